//! TOML with spans: the layer under the process table and the files in `credentials/`.
//!
//! `toml_edit` keeps the byte span of every key and value. On top of it:
//! - [`Field`]: one key and its value, where each is in the text, what kind of value it
//!   is ([`Kind`]), and the name messages give it (`process[2].restart`, `port`);
//! - [`Problems`]: every problem found in a file, each at a byte offset (or the file as
//!   a whole), turned by [`Problems::finish`] into [`Diagnostics`], sorted in source
//!   order, one `file:line:column: message` line each;
//! - [`suggest`]: the known word a misspelt one most likely stands for.
//!
//! A reader records a problem and goes on, so a file's problems are all reported at once.
//! The wording is the caller's: the process table says
//! `process[1].restart: expected a string, found an integer`, a credentials file
//! ``port` must be an integer, found a string`.

mod diagnostics;
mod field;
mod suggest;

pub use diagnostics::{Diagnostic, Diagnostics, Problems, Recorded};
pub use field::{Field, Kind, line_column};
pub use suggest::{did_you_mean, suggest};
