//! Pull and push progress on stderr: a bar per layer on a terminal (redrawn in
//! place), one line per state change otherwise, nothing with `-q`.

use barge_engine::{LayerState, Progress};
use barge_oci::Digest;
use std::io::Write;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub struct Printer {
    mode: Mode,
    state: Mutex<State>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Quiet,
    Lines,
    Terminal,
}

struct State {
    layers: Vec<(String, LayerState)>,
    drawn: usize,
    last_draw: Option<Instant>,
}

impl Printer {
    pub fn new(quiet: bool) -> Printer {
        use std::io::IsTerminal;
        let mode = if quiet {
            Mode::Quiet
        } else if std::io::stderr().is_terminal() {
            Mode::Terminal
        } else {
            Mode::Lines
        };
        Printer {
            mode,
            state: Mutex::new(State {
                layers: Vec::new(),
                drawn: 0,
                last_draw: None,
            }),
        }
    }

    /// A line outside the layer list (Digest:, Status:, warnings). Warnings
    /// quote registries' errors: the text is sanitised.
    pub fn line(&self, text: &str) {
        if self.mode == Mode::Quiet {
            return;
        }
        let text = barge_registry::sanitize(text);
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if self.mode == Mode::Terminal {
            // Finish the layer list as it stands, then print below it.
            self.redraw(&mut st);
            st.layers.clear();
            st.drawn = 0;
        }
        eprintln!("{text}");
    }

    fn redraw(&self, st: &mut State) {
        let mut out = String::new();
        if st.drawn > 0 {
            out.push_str(&format!("\x1b[{}A", st.drawn));
        }
        for (id, s) in &st.layers {
            out.push_str("\x1b[2K");
            out.push_str(&render(id, s));
            out.push('\n');
        }
        st.drawn = st.layers.len();
        st.last_draw = Some(Instant::now());
        let mut err = std::io::stderr().lock();
        let _ = err.write_all(out.as_bytes());
        let _ = err.flush();
    }
}

fn render(id: &str, s: &LayerState) -> String {
    match s.transfer() {
        Some((current, total)) => {
            let width = 50usize;
            let done = if total > 0 {
                ((current as f64 / total as f64) * width as f64) as usize
            } else {
                0
            }
            .min(width);
            let bar = if done == 0 {
                " ".repeat(width)
            } else {
                format!("{}>{}", "=".repeat(done - 1), " ".repeat(width - done))
            };
            format!(
                "{id}: {} [{bar}]  {}/{}",
                s.label(),
                crate::format::human_size(current),
                crate::format::human_size(total)
            )
        }
        None => format!("{id}: {}", s.label()),
    }
}

impl Progress for Printer {
    fn message(&self, text: &str) {
        self.line(text);
    }

    fn layer(&self, layer: &Digest, state: LayerState) {
        let id = layer.short().to_string();
        match self.mode {
            Mode::Quiet => {}
            Mode::Lines => {
                if state.transfer().is_none() {
                    eprintln!("{id}: {}", state.label());
                }
            }
            Mode::Terminal => {
                let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
                let in_transfer = state.transfer().is_some();
                match st.layers.iter_mut().find(|(i, _)| *i == id) {
                    Some(slot) => slot.1 = state,
                    None => st.layers.push((id, state)),
                }
                let due = st.last_draw.is_none_or(|t| t.elapsed() >= Duration::from_millis(100));
                if due || !in_transfer {
                    self.redraw(&mut st);
                }
            }
        }
    }

    fn warning(&self, message: &str) {
        self.line(&format!("WARNING: {message}"));
    }
}
