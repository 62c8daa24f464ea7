//! What the CLI prints when something fails: one line saying what failed
//! and what to do, the cause chain under `--debug`, and an exit status.

use barge_registry::sanitize;
use std::error::Error;

pub struct Failure {
    /// What barge was doing (`pulling busybox:latest`); empty when the error says it all.
    what: String,
    source: Box<dyn Error + Send + Sync + 'static>,
    hint: Option<String>,
    pub code: i32,
}

impl Failure {
    pub fn new(what: impl Into<String>, source: impl Into<Box<dyn Error + Send + Sync + 'static>>) -> Failure {
        let source = source.into();
        let hint = hint_for(source.as_ref());
        Failure {
            what: what.into(),
            source,
            hint,
            code: 1,
        }
    }

    /// A failure described by a message alone.
    pub fn msg(message: impl Into<String>) -> Failure {
        Failure::new("", message.into())
    }

    /// The exit status to use instead of 1.
    pub fn with_code(mut self, code: i32) -> Failure {
        self.code = code;
        self
    }

    /// Prints the error (and its causes under `--debug`) to stderr. Errors
    /// carry text registries, token servers and archives chose: every line
    /// goes through [`sanitize`] so none of it can drive the terminal.
    pub fn print(&self, debug: bool) {
        eprintln!("Error: {}", sanitize(&self.to_string()));
        if debug {
            for cause in self.causes() {
                eprintln!("  caused by: {}", sanitize(&cause));
            }
            eprintln!("  debug: {}", sanitize(&format!("{:?}", self.source)));
        }
    }

    /// The texts of the source chain, each once: a cause whose text the
    /// message or an earlier cause already contains is left out (many
    /// errors, in barge and in the crates it uses, say their source in
    /// their own message as well as returning it from `source()`).
    fn causes(&self) -> Vec<String> {
        let mut said = self.to_string();
        let mut out = Vec::new();
        let mut cause = self.source.source();
        while let Some(c) = cause {
            let text = c.to_string();
            if !said.contains(&text) {
                said.push('\n');
                said.push_str(&text);
                out.push(text);
            }
            cause = c.source();
        }
        out
    }
}

/// What failed, why, and the hint: the line the CLI prints after `Error: `.
impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if !self.what.is_empty() {
            write!(f, "{}: ", self.what)?;
        }
        write!(f, "{}", self.source)?;
        if let Some(h) = &self.hint {
            write!(f, "; {h}")?;
        }
        Ok(())
    }
}

/// Adds "what failed" to errors of library calls.
pub trait Context<T> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T, Failure>;
}

impl<T, E: Into<Box<dyn Error + Send + Sync + 'static>>> Context<T> for Result<T, E> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T, Failure> {
        self.map_err(|e| Failure::new(what(), e))
    }
}

/// What to do about errors barge recognises.
fn hint_for(e: &(dyn Error + 'static)) -> Option<String> {
    let mut cur: Option<&(dyn Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(h) = hint_of(err).or_else(|| inner(err).and_then(hint_of)) {
            return Some(h);
        }
        cur = err.source();
    }
    None
}

/// The error inside a `#[error(transparent)]` wrapper, which the source chain skips.
fn inner<'a>(err: &'a (dyn Error + 'static)) -> Option<&'a (dyn Error + 'static)> {
    if let Some(p) = err.downcast_ref::<barge_engine::PushError>() {
        return match p {
            barge_engine::PushError::Registry(r) => Some(r.as_ref()),
            barge_engine::PushError::Store(s) => Some(s),
            _ => None,
        };
    }
    if let Some(barge_engine::remote::RemoteError::Registry(r)) =
        err.downcast_ref::<barge_engine::remote::RemoteError>()
    {
        return Some(r.as_ref());
    }
    match err.downcast_ref::<barge_engine::PullError>()? {
        barge_engine::PullError::Registry(r) => Some(r.as_ref()),
        barge_engine::PullError::Store(s) => Some(s),
        _ => None,
    }
}

fn hint_of(err: &(dyn Error + 'static)) -> Option<String> {
    if let Some(r) = err.downcast_ref::<barge_registry::RegistryError>() {
        if let Some(h) = r.hint() {
            return Some(h);
        }
    }
    if let Some(barge_store::StoreError::Io { source, .. }) = err.downcast_ref::<barge_store::StoreError>() {
        if source.kind() == std::io::ErrorKind::PermissionDenied {
            return Some(
                "run barge as root, or pass --root DIR (or set BARGE_ROOT) to use a store you can write".into(),
            );
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An error with a message and an optional source.
    #[derive(Debug)]
    struct E(&'static str, Option<Box<E>>);

    impl std::fmt::Display for E {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }

    impl Error for E {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            self.1.as_deref().map(|e| e as &(dyn Error + 'static))
        }
    }

    fn chain(links: &[&'static str]) -> E {
        links
            .iter()
            .rev()
            .fold(None, |inner, text| Some(E(text, inner.map(Box::new))))
            .unwrap_or(E("", None))
    }

    #[test]
    fn causes_the_message_already_says_are_left_out() {
        // The top error repeats its source; the source does not repeat its own.
        let f = Failure::new(
            "pulling x",
            chain(&["bad manifest: key must be a string", "key must be a string", "io: gone"]),
        );
        assert_eq!(f.causes(), ["io: gone"]);
        // Causes that say something new all show, in order.
        let f = Failure::new("", chain(&["cannot push", "upload refused", "connection reset"]));
        assert_eq!(f.causes(), ["upload refused", "connection reset"]);
        // A cause repeating an earlier cause (not the message) shows once.
        let f = Failure::new("", chain(&["cannot push", "reset: by peer", "by peer"]));
        assert_eq!(f.causes(), ["reset: by peer"]);
    }
}
