//! Spring Cloud Config property-source model: flattening, ordering, Environment JSON, renderings and cipher.
//!
//! Pure code (no I/O): the server hands in one commit's files and gets back what Spring Cloud
//! Config would serve for it.
//!
//! - [`ConfigTree::from_files`] parses a commit's `.yml`/`.yaml`/`.properties` files once
//!   (YAML 1.1 scalars as SnakeYAML types them, multi-document files, `#---`).
//! - [`ConfigTree::environment`] orders property sources as Spring does for an
//!   [`EnvironmentQuery`] and a [`RepoLayout`], giving an [`Environment`] (serde: Spring's JSON).
//! - [`Environment::decrypt`] replaces `{cipher}` values through a [`Decryptor`] such as
//!   [`TextEncryptor`] (Spring's `Encryptors.text`).
//! - [`MergedConfig`] is the merged flat view behind the `.properties`, `.yml` and `.json`
//!   renderings ([`render`]) and behind [`MergedConfig::diff`].
//! - [`ConfigTree::validate`] checks a commit before it replaces the last good one.

mod activation;
mod cipher;
mod environment;
mod error;
mod flatten;
mod merge;
mod naming;
mod placeholder;
mod properties;
pub mod render;
mod request;
mod source;
mod tree;
mod validate;
mod value;
mod yaml;
mod yaml11;

pub use cipher::{CipherError, Decryptor, Encryptor, TextEncryptor, strip_cipher_prefixes};
pub use environment::Environment;
pub use error::{EnvironmentError, ParseError, RequestError, ValidationError};
pub use merge::{ConfigDiff, MergedConfig, Nested};
pub use naming::SourceNaming;
pub use placeholder::resolve as resolve_placeholders;
pub use request::{AppNames, Label, Profiles};
pub use source::{PropertySource, Source};
pub use tree::{ConfigTree, EnvironmentQuery, RepoLayout, is_config_file};
pub use value::{Value, java_double};
