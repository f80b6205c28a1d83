//! Reading the checkout with gix: HEAD, its first-parent ancestry, tree
//! diffs and uncommitted changes. Read-only; no git binary needed.

use std::path::{Path, PathBuf};

use gix::bstr::{BStr, BString, ByteSlice, ByteVec};
use gix::diff::tree::visit::{Action, Change};
use gix::objs::tree::EntryKind;

use crate::relevance::Relevance;

#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("{path} is not a git repository (or cannot be read): {message}")]
    Open { path: PathBuf, message: String },
    #[error("reading the repository: {0}")]
    Read(String),
}

fn read_error(e: impl std::fmt::Display) -> GitError {
    GitError::Read(e.to_string())
}

/// A commit on the first-parent chain, with its tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainCommit {
    pub commit: String,
    pub tree: String,
}

/// HEAD and its first-parent ancestors, newest first.
#[derive(Debug, Clone)]
pub struct Chain {
    /// `commits[0]` is HEAD.
    pub commits: Vec<ChainCommit>,
    /// The walk ended at a shallow-clone boundary before `max_ancestors`:
    /// older ancestors are not in this clone.
    pub shallow_boundary: bool,
}

/// What a tree diff found, in bounded memory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DiffSummary {
    /// The first relevant changed path; the diff stops there.
    pub first_relevant: Option<String>,
    /// Changed files seen (both sides of a rename count).
    pub files_seen: u64,
    /// Some of the irrelevant changed files, at most [`DiffSummary::SAMPLE`].
    pub irrelevant_sample: Vec<String>,
}

impl DiffSummary {
    pub const SAMPLE: usize = 20;
}

/// An opened checkout.
pub struct Checkout {
    repo: gix::Repository,
}

impl std::fmt::Debug for Checkout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Checkout")
            .field("git_dir", &self.repo.git_dir())
            .finish()
    }
}

impl Checkout {
    pub fn open(path: &Path) -> Result<Checkout, GitError> {
        let repo = gix::discover(path).map_err(|e| GitError::Open {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        Ok(Checkout { repo })
    }

    /// HEAD and up to `max_ancestors` first-parent ancestors (a merge is
    /// compared with its first parent, as the branch saw it).
    pub fn first_parent_chain(&self, max_ancestors: usize) -> Result<Chain, GitError> {
        let shallow: Vec<gix::ObjectId> = self
            .repo
            .shallow_commits()
            .map_err(read_error)?
            .map(|c| c.iter().copied().collect())
            .unwrap_or_default();
        let head = self.repo.head_commit().map_err(read_error)?;
        let mut commits = Vec::with_capacity(max_ancestors.min(1024) + 1);
        let mut current = head;
        let mut shallow_boundary = false;
        loop {
            commits.push(ChainCommit {
                commit: current.id.to_string(),
                tree: current.tree_id().map_err(read_error)?.to_string(),
            });
            if commits.len() > max_ancestors {
                break;
            }
            if shallow.contains(&current.id) {
                shallow_boundary = true;
                break;
            }
            let Some(parent) = current.parent_ids().next() else {
                break;
            };
            match self.repo.find_commit(parent) {
                Ok(c) => current = c,
                // A parent the clone does not have: a shallow clone without
                // a shallow file entry, or a partial one.
                Err(_) => {
                    shallow_boundary = true;
                    break;
                }
            }
        }
        Ok(Chain {
            commits,
            shallow_boundary,
        })
    }

    /// Diffs the trees `old` and `new` (hex ids) until the first relevant
    /// change. Renames are a deletion and an addition, so both sides count.
    pub fn diff(
        &self,
        old: &str,
        new: &str,
        relevance: &Relevance,
    ) -> Result<DiffSummary, GitError> {
        let old = self.find_tree(old)?;
        let new = self.find_tree(new)?;
        let mut visitor = RelevanceVisitor::new(relevance);
        let result = gix::diff::tree(
            gix::objs::TreeRefIter::from_bytes(&old.data, self.repo.object_hash()),
            gix::objs::TreeRefIter::from_bytes(&new.data, self.repo.object_hash()),
            gix::diff::tree::State::default(),
            &self.repo.objects,
            &mut visitor,
        );
        match result {
            Ok(()) | Err(gix::diff::tree::Error::Cancelled) => Ok(visitor.summary),
            Err(e) => Err(read_error(e)),
        }
    }

    fn find_tree(&self, hex: &str) -> Result<gix::Tree<'_>, GitError> {
        let id = gix::ObjectId::from_hex(hex.as_bytes()).map_err(read_error)?;
        self.repo.find_tree(id).map_err(read_error)
    }

    /// Tracked relevant files whose worktree content differs from the index
    /// (modified or deleted), at most `cap` of them. Files whose size and
    /// modification time match the index are taken as unchanged; others are
    /// hashed. Untracked files are not looked at.
    pub fn dirty_relevant_files(
        &self,
        relevance: &Relevance,
        cap: usize,
    ) -> Result<Vec<String>, GitError> {
        let Some(workdir) = self.repo.workdir() else {
            return Ok(Vec::new());
        };
        let index = self.repo.open_index().map_err(read_error)?;
        let mut dirty = Vec::new();
        for entry in index.entries() {
            if dirty.len() >= cap {
                break;
            }
            if entry
                .flags
                .contains(gix::index::entry::Flags::SKIP_WORKTREE)
            {
                continue;
            }
            let path = entry.path(&index);
            let Ok(text) = path.to_str() else {
                dirty.push(path.to_str_lossy().into_owned());
                continue;
            };
            if !relevance.is_relevant(text) {
                continue;
            }
            if entry.mode.is_submodule() {
                continue;
            }
            let on_disk = workdir.join(text);
            if !same_content(&self.repo, entry, &on_disk) {
                dirty.push(text.to_owned());
            }
        }
        Ok(dirty)
    }
}

fn same_content(repo: &gix::Repository, entry: &gix::index::Entry, path: &Path) -> bool {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return false;
    };
    if entry.mode.contains(gix::index::entry::Mode::SYMLINK) {
        return match std::fs::read_link(path) {
            Ok(target) => match gix::path::into_bstr(target) {
                Ok(bytes) => blob_id(repo, bytes.as_bytes()) == Some(entry.id),
                Err(_) => false,
            },
            Err(_) => false,
        };
    }
    // The index stores the size truncated to 32 bits.
    let size_matches = meta.len() as u32 == entry.stat.size;
    let mtime_matches = meta
        .modified()
        .ok()
        .and_then(|m| m.duration_since(std::time::UNIX_EPOCH).ok())
        .is_some_and(|d| {
            d.as_secs() as u32 == entry.stat.mtime.secs
                && d.subsec_nanos() == entry.stat.mtime.nsecs
        });
    if size_matches && mtime_matches {
        return true;
    }
    match std::fs::read(path) {
        Ok(data) => blob_id(repo, &data) == Some(entry.id),
        Err(_) => false,
    }
}

fn blob_id(repo: &gix::Repository, data: &[u8]) -> Option<gix::ObjectId> {
    gix::objs::compute_hash(repo.object_hash(), gix::objs::Kind::Blob, data).ok()
}

/// Tracks the path of each change (as gix-diff's `Recorder` does) and
/// stops at the first relevant one, keeping only a small sample.
struct RelevanceVisitor<'a> {
    relevance: &'a Relevance,
    path_deque: std::collections::VecDeque<BString>,
    path: BString,
    summary: DiffSummary,
}

impl<'a> RelevanceVisitor<'a> {
    fn new(relevance: &'a Relevance) -> Self {
        RelevanceVisitor {
            relevance,
            path_deque: Default::default(),
            path: BString::default(),
            summary: DiffSummary::default(),
        }
    }

    fn push_element(&mut self, name: &BStr) {
        if name.is_empty() {
            return;
        }
        if !self.path.is_empty() {
            self.path.push(b'/');
        }
        self.path.push_str(name);
    }
}

impl gix::diff::tree::Visit for RelevanceVisitor<'_> {
    fn pop_front_tracked_path_and_set_current(&mut self) {
        self.path = self.path_deque.pop_front().unwrap_or_default();
    }

    fn push_back_tracked_path_component(&mut self, component: &BStr) {
        self.push_element(component);
        self.path_deque.push_back(self.path.clone());
    }

    fn push_path_component(&mut self, component: &BStr) {
        self.push_element(component);
    }

    fn pop_path_component(&mut self) {
        match self.path.rfind_byte(b'/') {
            Some(pos) => self.path.truncate(pos),
            None => self.path.clear(),
        }
    }

    fn visit(&mut self, change: Change) -> Action {
        let (kind, old_kind) = match &change {
            Change::Addition { entry_mode, .. } | Change::Deletion { entry_mode, .. } => {
                (entry_mode.kind(), None)
            }
            Change::Modification {
                previous_entry_mode,
                entry_mode,
                ..
            } => (entry_mode.kind(), Some(previous_entry_mode.kind())),
        };
        // Directories are descended into; their files are visited.
        if kind == EntryKind::Tree && old_kind.is_none_or(|k| k == EntryKind::Tree) {
            return Action::Continue(());
        }
        self.summary.files_seen += 1;
        let path = self.path.to_str_lossy();
        // A submodule moving, or a path that is not UTF-8, cannot be ruled out.
        let relevant = kind == EntryKind::Commit
            || self.path.to_str().is_err()
            || self.relevance.is_relevant(&path);
        if relevant {
            self.summary.first_relevant = Some(path.into_owned());
            return Action::Break(());
        }
        if self.summary.irrelevant_sample.len() < DiffSummary::SAMPLE {
            self.summary.irrelevant_sample.push(path.into_owned());
        }
        Action::Continue(())
    }
}
