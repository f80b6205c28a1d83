//! What a scan is configured with: the inputs that go into the analysis key
//! and the relevance rules, normalised so that equal configurations compare
//! equal.

use std::fmt;

use ghcache_actions::split_list;

/// A CodeQL language, by the identifiers CodeQL itself uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Language {
    Actions,
    CCpp,
    Csharp,
    Go,
    JavaKotlin,
    JavascriptTypescript,
    Python,
    Ruby,
    Rust,
    Swift,
}

impl Language {
    pub const ALL: [Language; 10] = [
        Language::Actions,
        Language::CCpp,
        Language::Csharp,
        Language::Go,
        Language::JavaKotlin,
        Language::JavascriptTypescript,
        Language::Python,
        Language::Ruby,
        Language::Rust,
        Language::Swift,
    ];

    /// CodeQL's identifier, also accepting its aliases (`cpp`, `java`,
    /// `typescript`, …). `None` for a language CodeQL does not know.
    pub fn parse(name: &str) -> Option<Language> {
        Some(match name.trim().to_ascii_lowercase().as_str() {
            "actions" => Language::Actions,
            "c" | "cpp" | "c-cpp" | "c++" => Language::CCpp,
            "csharp" | "c#" => Language::Csharp,
            "go" => Language::Go,
            "java" | "kotlin" | "java-kotlin" => Language::JavaKotlin,
            "javascript" | "typescript" | "javascript-typescript" => Language::JavascriptTypescript,
            "python" => Language::Python,
            "ruby" => Language::Ruby,
            "rust" => Language::Rust,
            "swift" => Language::Swift,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Language::Actions => "actions",
            Language::CCpp => "c-cpp",
            Language::Csharp => "csharp",
            Language::Go => "go",
            Language::JavaKotlin => "java-kotlin",
            Language::JavascriptTypescript => "javascript-typescript",
            Language::Python => "python",
            Language::Ruby => "ruby",
            Language::Rust => "rust",
            Language::Swift => "swift",
        }
    }

    /// Languages CodeQL extracts from source without a build, where the
    /// configuration's `paths`/`paths-ignore` filter what is extracted.
    pub fn is_interpreted(self) -> bool {
        matches!(
            self,
            Language::Actions | Language::JavascriptTypescript | Language::Python | Language::Ruby
        )
    }
}

impl fmt::Display for Language {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How compiled languages are extracted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BuildMode {
    /// Not given: CodeQL picks per language (autobuild for most compiled ones).
    Default,
    None,
    Autobuild,
    Manual,
}

impl BuildMode {
    pub fn parse(text: &str) -> Option<BuildMode> {
        Some(match text.trim().to_ascii_lowercase().as_str() {
            "" => BuildMode::Default,
            "none" => BuildMode::None,
            "autobuild" => BuildMode::Autobuild,
            "manual" => BuildMode::Manual,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            BuildMode::Default => "",
            BuildMode::None => "none",
            BuildMode::Autobuild => "autobuild",
            BuildMode::Manual => "manual",
        }
    }
}

/// The raw inputs of one scan, as the action or the command line gives them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RawInputs {
    pub repository: String,
    /// Comma- or newline-separated.
    pub languages: String,
    pub queries: String,
    /// Path of the CodeQL configuration file (relative to the source root),
    /// empty when none.
    pub config_file: String,
    /// Contents of the configuration file, when one is given.
    pub config_contents: Option<Vec<u8>>,
    pub codeql_version: String,
    pub build_mode: String,
    pub category: String,
}

/// Inputs after validation: the part of the analysis key that is not the tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inputs {
    pub repository: String,
    /// Sorted, deduplicated.
    pub languages: Vec<Language>,
    pub queries: String,
    pub config_file: Option<String>,
    pub config_contents: Option<Vec<u8>>,
    pub codeql_version: String,
    pub build_mode: BuildMode,
    pub category: String,
}

/// Why inputs cannot be trusted to describe the scan (so it must run).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnknownInput {
    #[error("no languages given")]
    NoLanguages,
    #[error("language `{0}` is not one CodeQL knows ({known})", known = known_languages())]
    Language(String),
    #[error("build mode `{0}` is not one of none, autobuild, manual")]
    BuildMode(String),
    #[error(
        "no CodeQL version given (set codeql-version to the CodeQL bundle or CLI version the scan uses)"
    )]
    CodeqlVersion,
    #[error("no repository given (GITHUB_REPOSITORY is not set)")]
    Repository,
    #[error("the configuration file {0} cannot be read")]
    ConfigFile(String),
}

fn known_languages() -> String {
    Language::ALL.map(Language::as_str).join(", ")
}

impl RawInputs {
    /// Normalises and checks the inputs; any unknown one means "scan".
    pub fn validate(&self) -> Result<Inputs, UnknownInput> {
        let mut languages = Vec::new();
        for name in split_list(&self.languages) {
            let language =
                Language::parse(&name).ok_or_else(|| UnknownInput::Language(name.clone()))?;
            languages.push(language);
        }
        languages.sort();
        languages.dedup();
        if languages.is_empty() {
            return Err(UnknownInput::NoLanguages);
        }
        let build_mode = BuildMode::parse(&self.build_mode)
            .ok_or_else(|| UnknownInput::BuildMode(self.build_mode.trim().to_owned()))?;
        let codeql_version = self.codeql_version.trim().to_owned();
        if codeql_version.is_empty() {
            return Err(UnknownInput::CodeqlVersion);
        }
        let repository = self.repository.trim().to_owned();
        if repository.is_empty() {
            return Err(UnknownInput::Repository);
        }
        let config_file = Some(self.config_file.trim())
            .filter(|p| !p.is_empty())
            .map(|p| p.trim_start_matches("./").to_owned());
        if let Some(path) = &config_file
            && self.config_contents.is_none()
        {
            return Err(UnknownInput::ConfigFile(path.clone()));
        }
        Ok(Inputs {
            repository,
            languages,
            queries: split_list(&self.queries).join(","),
            config_file,
            config_contents: self.config_contents.clone(),
            codeql_version,
            build_mode,
            category: self.category.trim().to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw() -> RawInputs {
        RawInputs {
            repository: "o/r".into(),
            languages: "python, cpp\njava".into(),
            codeql_version: "2.19.0".into(),
            ..RawInputs::default()
        }
    }

    #[test]
    fn languages_are_normalised_sorted_and_deduplicated() {
        let mut r = raw();
        r.languages = "typescript,javascript, c".into();
        let inputs = r.validate().expect("valid");
        assert_eq!(
            inputs.languages,
            vec![Language::CCpp, Language::JavascriptTypescript]
        );
    }

    #[test]
    fn unknown_inputs_are_refused() {
        let mut r = raw();
        r.languages = "cobol".into();
        assert_eq!(r.validate(), Err(UnknownInput::Language("cobol".into())));
        let mut r = raw();
        r.build_mode = "sometimes".into();
        assert!(matches!(r.validate(), Err(UnknownInput::BuildMode(_))));
        let mut r = raw();
        r.codeql_version = " ".into();
        assert_eq!(r.validate(), Err(UnknownInput::CodeqlVersion));
        let mut r = raw();
        r.config_file = ".github/codeql.yml".into();
        assert!(matches!(r.validate(), Err(UnknownInput::ConfigFile(_))));
    }
}
