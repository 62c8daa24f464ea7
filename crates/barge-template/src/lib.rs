//! Go's `text/template` as docker users write `--format`: actions, `if` /
//! `else if` / `else`, `range` (with `$i, $e :=`, `else`, `break`,
//! `continue`), `with`, variables, pipelines, parenthesised expressions,
//! comments and `{{-`/`-}}` trimming; Go's built-in functions (`and`, `or`,
//! `not`, `eq`…`ge`, `len`, `index`, `slice`, `print`, `printf`,
//! `println`) and the docker CLI's (`json`, `join`, `split`, `lower`,
//! `upper`, `title`, `truncate`, `pad`).
//!
//! The data is a [`serde_json::Value`]: what barge's commands print is
//! JSON first, so a missing map key reads as `<no value>` as it does for
//! Go's maps. Not for: `define`/`template`/`block` (docker's `--format`
//! has one template), methods on Go types, the `table` directive and
//! `\t` escapes (the CLI's, see barge-cli's format module), HTML escaping.
#![forbid(unsafe_code)]

mod exec;
mod funcs;
mod lex;
mod parse;

use serde_json::Value;
use std::collections::BTreeSet;

/// Why a template did not parse or could not be applied.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TemplateError {
    #[error("template parsing error: {0}")]
    Parse(String),
    #[error("template: executing {action}: {message}")]
    Exec { action: String, message: String },
}

/// A parsed template.
#[derive(Debug, Clone)]
pub struct Template {
    nodes: Vec<parse::Node>,
}

impl Template {
    pub fn parse(src: &str) -> Result<Template, TemplateError> {
        Ok(Template {
            nodes: parse::parse(src)?,
        })
    }

    /// The template applied to `data`.
    pub fn render(&self, data: &Value) -> Result<String, TemplateError> {
        exec::render(&self.nodes, data)
    }

    /// The paths of the fields the template reads from its data (`["Config",
    /// "Env"]` for `{{.Config.Env}}`, also through `$.` inside `range` and
    /// `with`); `None` when it reads the whole value (`{{json .}}`).
    pub fn root_paths(&self) -> Option<Vec<Vec<String>>> {
        let mut out = Vec::new();
        parse::root_paths(&self.nodes, true, &mut out).then_some(out)
    }

    /// The top-level fields of [`Template::root_paths`].
    pub fn root_fields(&self) -> Option<BTreeSet<String>> {
        Some(
            self.root_paths()?
                .into_iter()
                .filter_map(|p| p.into_iter().next())
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests;
