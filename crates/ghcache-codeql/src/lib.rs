//! The CodeQL result cache: analysis keys, skip decisions over git history
//! and stored SARIF.
//!
//! What it is for: deciding, in well under a second and safe first, whether
//! a CodeQL scan of a checkout can be skipped because an analysis of the
//! same inputs (or of an ancestor whose changes since cannot matter) is
//! held, and keeping those analyses (record + compressed SARIF bundle) in
//! the daemon's store, shared with the fleet through a [`Fleet`].
//!
//! What it is not for: HTTP (the daemon's control API carries
//! [`api`] types) or libp2p (the daemon adapts its mesh to [`Fleet`]).

pub mod api;
mod bundle;
mod decide;
mod git;
mod inputs;
mod key;
mod options;
mod relevance;
mod routes;
mod service;
mod stats;
#[cfg(feature = "test-util")]
#[doc(hidden)]
pub mod testing;

pub use bundle::{BundleError, SarifBundle, SarifFile};
pub use decide::{
    AnalysisSource, CheckOptions, Decision, MAX_AGE_LIMITS, Reason, decide_after_lookup,
    load_config, prepare, prepare_save,
};
pub use git::{Chain, ChainCommit, Checkout, DiffSummary, GitError};
pub use inputs::{BuildMode, Inputs, Language, RawInputs, UnknownInput};
pub use key::AnalysisKey;
pub use options::{
    CheckInputs, DEFAULT_MAX_AGE, DEFAULT_MAX_ANCESTORS, DEFAULT_NEVER_SKIP_EVENTS, InputError,
};
pub use relevance::{ConfigFilters, PathPattern, Relevance};
pub use routes::RouteReply;
pub use service::{CodeqlService, Fleet, FleetFuture, ServiceError};
pub use stats::{CodeqlStats, CounterFamily, SkipCounts};
