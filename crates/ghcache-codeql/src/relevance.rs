//! Which changed files can change what CodeQL finds. Safe first: anything
//! we cannot rule out is relevant.

use crate::inputs::{BuildMode, Inputs, Language};

/// Source extensions CodeQL's extractors read, per language.
fn extensions(language: Language) -> &'static [&'static str] {
    match language {
        // Workflows and actions are matched by path below.
        Language::Actions => &[],
        Language::CCpp => &[
            "c", "cc", "cpp", "cxx", "c++", "cp", "h", "hh", "hpp", "hxx", "h++", "inl", "ipp",
            "tcc", "tpp", "txx", "ixx", "cppm", "m", "mm",
        ],
        Language::Csharp => &[
            "cs", "csx", "cshtml", "razor", "config", "resx", "xaml", "aspx", "ascx", "asax",
            "ashx", "master", "vb",
        ],
        Language::Go => &["go"],
        Language::JavaKotlin => &["java", "kt", "kts", "properties", "xml", "jsp", "groovy"],
        Language::JavascriptTypescript => &[
            "js", "jsx", "mjs", "cjs", "es", "es6", "ts", "tsx", "mts", "cts", "vue", "svelte",
            "html", "htm", "xhtml", "xht", "hbs", "ejs", "njk", "json", "yml", "yaml", "raml",
        ],
        Language::Python => &["py", "pyi", "pyw"],
        Language::Ruby => &["rb", "erb", "rake", "gemspec", "ru", "rbi"],
        Language::Rust => &["rs"],
        Language::Swift => &["swift", "h", "m", "mm", "pbxproj", "xcconfig"],
    }
}

/// Build and dependency files by exact file name, per language.
fn build_file_names(language: Language) -> &'static [&'static str] {
    match language {
        Language::CCpp => &[
            "CMakeLists.txt",
            "Makefile",
            "makefile",
            "GNUmakefile",
            "meson.build",
            "meson_options.txt",
            "meson.options",
            "configure",
            "configure.ac",
            "configure.in",
            "BUILD",
            "BUILD.bazel",
            "WORKSPACE",
            "WORKSPACE.bazel",
            "MODULE.bazel",
            "SConstruct",
            "SConscript",
            "build.ninja",
            "vcpkg.json",
            "conanfile.txt",
            "conanfile.py",
            "CMakePresets.json",
        ],
        Language::Csharp => &[
            "Directory.Build.props",
            "Directory.Build.targets",
            "Directory.Build.rsp",
            "Directory.Packages.props",
            "packages.config",
            "global.json",
            "nuget.config",
            "NuGet.Config",
            "packages.lock.json",
            "paket.dependencies",
            "paket.lock",
        ],
        Language::Go => &["go.mod", "go.sum", "go.work", "go.work.sum", "modules.txt"],
        Language::JavaKotlin => &[
            "pom.xml",
            "build.gradle",
            "build.gradle.kts",
            "settings.gradle",
            "settings.gradle.kts",
            "gradle.properties",
            "gradlew",
            "gradlew.bat",
            "gradle-wrapper.properties",
            "libs.versions.toml",
            "mvnw",
            "mvnw.cmd",
            "maven-wrapper.properties",
            "build.xml",
            "ivy.xml",
            "lombok.config",
        ],
        Language::JavascriptTypescript => &[
            "package.json",
            "package-lock.json",
            "yarn.lock",
            "pnpm-lock.yaml",
            "tsconfig.json",
            ".babelrc",
        ],
        Language::Python => &[
            "requirements.txt",
            "setup.py",
            "setup.cfg",
            "pyproject.toml",
            "Pipfile",
            "Pipfile.lock",
            "poetry.lock",
            "uv.lock",
        ],
        Language::Ruby => &["Gemfile", "Gemfile.lock", "Rakefile", ".ruby-version"],
        Language::Rust => &[
            "Cargo.toml",
            "Cargo.lock",
            "rust-toolchain",
            "rust-toolchain.toml",
            "build.rs",
        ],
        Language::Swift => &[
            "Package.swift",
            "Package.resolved",
            "Podfile",
            "Podfile.lock",
            "Cartfile",
            "Cartfile.resolved",
        ],
        Language::Actions => &["action.yml", "action.yaml"],
    }
}

/// Build and dependency files by extension (`*.mk`, `*.csproj`, …).
fn build_file_extensions(language: Language) -> &'static [&'static str] {
    match language {
        Language::CCpp => &[
            "mk", "cmake", "am", "bzl", "vcxproj", "vcproj", "sln", "props", "targets", "ninja",
        ],
        Language::Csharp => &[
            "csproj",
            "vbproj",
            "fsproj",
            "sln",
            "slnx",
            "slnf",
            "props",
            "targets",
            "nuspec",
            "ruleset",
            "editorconfig",
        ],
        Language::JavaKotlin => &["gradle"],
        Language::Swift => &["xcworkspacedata", "xcscheme", "modulemap"],
        _ => &[],
    }
}

/// A `paths` / `paths-ignore` pattern as CodeQL reads it: relative to the
/// source root, `*` within one segment, `**` across segments, and a pattern
/// naming a directory covering everything under it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathPattern {
    segments: Vec<String>,
}

impl PathPattern {
    pub fn new(pattern: &str) -> PathPattern {
        let trimmed = pattern
            .trim()
            .trim_start_matches("./")
            .trim_end_matches('/');
        let trimmed = trimmed.strip_suffix("/**").unwrap_or(trimmed);
        PathPattern {
            segments: trimmed
                .split('/')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
        }
    }

    /// Whether `path` is the pattern or lies under what it names.
    pub fn matches(&self, path: &str) -> bool {
        let parts: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        prefix_match(&self.segments, &parts)
    }
}

/// Whether the pattern matches a prefix of `parts` (a directory pattern
/// covers what is under it).
fn prefix_match(pattern: &[String], parts: &[&str]) -> bool {
    match pattern.split_first() {
        None => true,
        Some((first, rest)) if first == "**" => {
            (0..=parts.len()).any(|skip| prefix_match(rest, &parts[skip..]))
        }
        Some((first, rest)) => match parts.split_first() {
            Some((part, tail)) => {
                segment_match(first.as_bytes(), part.as_bytes()) && prefix_match(rest, tail)
            }
            None => false,
        },
    }
}

/// `*` (any run within the segment) and `?` (one byte); anything else literal.
fn segment_match(pattern: &[u8], text: &[u8]) -> bool {
    match pattern.split_first() {
        None => text.is_empty(),
        Some((b'*', rest)) => (0..=text.len()).any(|skip| segment_match(rest, &text[skip..])),
        Some((b'?', rest)) => !text.is_empty() && segment_match(rest, &text[1..]),
        Some((c, rest)) => text.first() == Some(c) && segment_match(rest, &text[1..]),
    }
}

/// The parts of a CodeQL configuration file that change relevance.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigFilters {
    pub paths: Vec<PathPattern>,
    pub paths_ignore: Vec<PathPattern>,
    /// Local query or pack directories (`uses: ./queries`): their files are relevant.
    pub local_queries: Vec<PathPattern>,
}

#[derive(Debug, serde::Deserialize, Default)]
struct ConfigFile {
    #[serde(default)]
    paths: Vec<String>,
    #[serde(default, rename = "paths-ignore")]
    paths_ignore: Vec<String>,
    #[serde(default)]
    queries: Vec<QueryRef>,
}

#[derive(Debug, serde::Deserialize)]
struct QueryRef {
    uses: String,
}

impl ConfigFilters {
    /// Reads the filters of a configuration file; an unreadable one is an
    /// unknown input (the caller scans).
    pub fn parse(contents: &[u8]) -> Result<ConfigFilters, String> {
        if contents.iter().all(u8::is_ascii_whitespace) {
            return Ok(ConfigFilters::default());
        }
        let file: ConfigFile = ghcache_config::parse_yaml(contents)
            .map_err(|e| format!("not a CodeQL configuration: {e}"))?;
        Ok(ConfigFilters {
            paths: file.paths.iter().map(|p| PathPattern::new(p)).collect(),
            paths_ignore: file
                .paths_ignore
                .iter()
                .map(|p| PathPattern::new(p))
                .collect(),
            local_queries: local_dirs(file.queries.iter().map(|q| q.uses.as_str())),
        })
    }
}

/// Query references that are paths in the repository (`./dir`).
pub fn local_dirs<'a>(refs: impl Iterator<Item = &'a str>) -> Vec<PathPattern> {
    refs.filter(|r| r.starts_with("./"))
        .map(PathPattern::new)
        .collect()
}

/// Decides, path by path, whether a change can change the analysis.
#[derive(Debug, Clone)]
pub struct Relevance {
    languages: Vec<Language>,
    build_mode: BuildMode,
    config_file: Option<String>,
    filters: ConfigFilters,
}

impl Relevance {
    pub fn new(inputs: &Inputs, filters: ConfigFilters) -> Relevance {
        let mut filters = filters;
        filters
            .local_queries
            .extend(local_dirs(inputs.queries.split(',')));
        Relevance {
            languages: inputs.languages.clone(),
            build_mode: inputs.build_mode,
            config_file: inputs.config_file.clone(),
            filters,
        }
    }

    /// Whether CodeQL applies `paths`/`paths-ignore` to `language`: to the
    /// interpreted languages, and to compiled ones only without a build
    /// (build mode `none`); a build compiles whatever the build compiles.
    pub fn filters_apply(&self, language: Language) -> bool {
        language.is_interpreted() || self.build_mode == BuildMode::None
    }

    /// Whether a change to `path` (relative to the repository root) can
    /// change the analysis.
    pub fn is_relevant(&self, path: &str) -> bool {
        if self.config_file.as_deref() == Some(path)
            || path.starts_with(".github/workflows/")
            || self.filters.local_queries.iter().any(|p| p.matches(path))
        {
            return true;
        }
        self.languages
            .iter()
            .any(|&language| self.relevant_to(language, path))
    }

    fn relevant_to(&self, language: Language, path: &str) -> bool {
        let name = path.rsplit('/').next().unwrap_or(path);
        let extension = name.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase());
        let ext = extension.as_deref().unwrap_or("");
        let is_source = extensions(language).contains(&ext);
        let is_build = build_file_names(language).contains(&name)
            || build_file_extensions(language).contains(&ext)
            || (path.contains(".cargo/config") && language == Language::Rust)
            || (name.starts_with("requirements") && ext == "txt" && language == Language::Python)
            || (name.starts_with("Directory.Build.") && language == Language::Csharp)
            || (name.starts_with("build.gradle") || name.starts_with("settings.gradle"))
                && language == Language::JavaKotlin;
        if !is_source && !is_build {
            return false;
        }
        // A build uses its build files whatever the filters say.
        if is_build && !language.is_interpreted() && self.build_mode != BuildMode::None {
            return true;
        }
        if !self.filters_apply(language) {
            return true;
        }
        let included =
            self.filters.paths.is_empty() || self.filters.paths.iter().any(|p| p.matches(path));
        included && !self.filters.paths_ignore.iter().any(|p| p.matches(path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RawInputs;

    fn relevance(languages: &str, build_mode: &str, config: &str) -> Relevance {
        let inputs = RawInputs {
            repository: "o/r".into(),
            languages: languages.into(),
            codeql_version: "2.19.0".into(),
            build_mode: build_mode.into(),
            config_file: ".github/codeql/codeql-config.yml".into(),
            config_contents: Some(config.as_bytes().to_vec()),
            ..RawInputs::default()
        }
        .validate()
        .expect("valid");
        let filters = ConfigFilters::parse(config.as_bytes()).expect("config");
        Relevance::new(&inputs, filters)
    }

    #[test]
    fn sources_build_files_config_and_workflows_are_relevant() {
        let r = relevance("cpp, python", "", "");
        for path in [
            "src/a.cpp",
            "include/x.h",
            "CMakeLists.txt",
            "sub/rules.mk",
            "app/main.py",
            "requirements-dev.txt",
            ".github/workflows/ci.yml",
            ".github/codeql/codeql-config.yml",
        ] {
            assert!(r.is_relevant(path), "{path}");
        }
        for path in [
            "README.md",
            "docs/guide.rst",
            "assets/logo.png",
            "main.go",
            "Cargo.toml",
        ] {
            assert!(!r.is_relevant(path), "{path}");
        }
    }

    #[test]
    fn paths_ignore_applies_to_interpreted_languages_and_build_mode_none_only() {
        let config = "paths-ignore:\n  - vendor\n  - '**/generated/**'\n";
        let interpreted = relevance("python", "", config);
        assert!(!interpreted.is_relevant("vendor/lib/x.py"));
        assert!(!interpreted.is_relevant("a/generated/b/c.py"));
        assert!(interpreted.is_relevant("src/x.py"));
        let built = relevance("java", "autobuild", config);
        assert!(built.is_relevant("vendor/lib/X.java"));
        let no_build = relevance("java", "none", config);
        assert!(!no_build.is_relevant("vendor/lib/X.java"));
        assert!(no_build.is_relevant("src/X.java"));
    }

    #[test]
    fn paths_limits_interpreted_languages() {
        let r = relevance("javascript", "", "paths:\n  - src\n");
        assert!(r.is_relevant("src/app.ts"));
        assert!(!r.is_relevant("test/app.test.ts"));
        // The config file itself and workflows stay relevant.
        assert!(r.is_relevant(".github/workflows/codeql.yml"));
    }

    #[test]
    fn local_query_directories_are_relevant() {
        let r = relevance(
            "go",
            "",
            "queries:\n  - uses: ./ql/custom\n  - uses: security-extended\n",
        );
        assert!(r.is_relevant("ql/custom/Injection.ql"));
        assert!(!r.is_relevant("ql/other/readme.md"));
    }

    #[test]
    fn patterns_follow_codeql_globs() {
        assert!(PathPattern::new("src/*.js").matches("src/a.js"));
        assert!(!PathPattern::new("src/*.js").matches("src/a/b.js"));
        assert!(PathPattern::new("**/test").matches("a/b/test/x.py"));
        assert!(PathPattern::new("docs/**").matches("docs/a/b"));
        assert!(!PathPattern::new("docs").matches("documentation/x"));
    }

    #[test]
    fn a_malformed_config_is_an_error() {
        assert!(ConfigFilters::parse(b"paths: [unclosed").is_err());
        assert!(ConfigFilters::parse(b"paths: 3").is_err());
    }
}
