//! The stages of a Dockerfile and the order they are built in.
//!
//! [`plan`] splits the parsed lines at each `FROM`, evaluates the ARGs
//! declared before the first one (the only variables a `FROM` line or a
//! `COPY --from` sees), names every stage (`AS name`, else `stage-N`),
//! tells what each stands on (scratch, an image, an earlier stage) and
//! what it copies from, and keeps only the stages the target needs, in
//! Dockerfile order. Nothing here touches the store: every mistake it can
//! find is found before the first step runs.

use crate::dockerfile::{Args, Instruction, Line, RunMount};
use crate::BuildError;
use barge_oci::Platform;
use std::collections::{BTreeMap, BTreeSet};

/// What a stage starts from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StageBase {
    Scratch,
    /// An image, by the name FROM gives after substitution.
    Image(String),
    /// An earlier stage, by index.
    Stage(usize),
}

/// Where `COPY --from` reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CopySource {
    Stage(usize),
    Image(String),
}

#[derive(Debug)]
pub struct StagePlan<'l> {
    pub index: usize,
    /// `AS name`, lower case as docker compares them.
    pub name: Option<String>,
    pub from: &'l Line,
    pub base: StageBase,
    /// `FROM --platform=…`.
    pub platform: Option<Platform>,
    /// The instructions after FROM.
    pub lines: Vec<&'l Line>,
}

impl StagePlan<'_> {
    /// The name progress and errors show: `AS name`, else `stage-N`.
    pub fn label(&self) -> String {
        match &self.name {
            Some(n) => n.clone(),
            None => format!("stage-{}", self.index),
        }
    }
}

#[derive(Debug)]
pub struct Plan<'l> {
    /// ARG values declared before the first FROM (docker's platform ARGs
    /// included).
    pub global: BTreeMap<String, String>,
    /// The ARG lines before the first FROM.
    pub global_lines: Vec<&'l Line>,
    pub stages: Vec<StagePlan<'l>>,
    /// The stages to build, in Dockerfile order; the last is the target.
    pub order: Vec<usize>,
    /// ARG names declared before the first FROM (a `--build-arg` for them is used).
    pub declared: BTreeSet<String>,
}

impl Plan<'_> {
    /// The stage built last, whose image the build makes.
    pub fn target(&self) -> usize {
        self.order.last().copied().unwrap_or(0)
    }

    /// What `COPY --from=raw` in stage `current` names: an earlier stage
    /// by name or index, else an image.
    pub fn copy_source(&self, line: &Line, current: usize, raw: &str) -> Result<CopySource, BuildError> {
        copy_source(
            &self.stages[..current.min(self.stages.len())],
            line,
            current,
            raw,
            &self.global,
        )
    }
}

/// Splits `lines` into stages and picks the ones `target` (a stage name;
/// the last stage when `None`) needs. `global` holds docker's automatic
/// ARGs; `build_args` the `--build-arg` values.
pub fn plan<'l>(
    lines: &'l [Line],
    build_args: &BTreeMap<String, String>,
    mut global: BTreeMap<String, String>,
    target: Option<&str>,
) -> Result<Plan<'l>, BuildError> {
    let mut global_lines = Vec::new();
    let mut declared = BTreeSet::new();
    let mut stages: Vec<StagePlan<'l>> = Vec::new();
    for line in lines {
        match (&line.instruction, stages.last_mut()) {
            (Instruction::Arg(args), None) => {
                for (k, v) in crate::steps::declare_args(line, args, &global, build_args, &global)? {
                    global.insert(k, v);
                }
                for w in args.words(&global).map_err(|e| line.error(e))? {
                    declared.insert(w.split('=').next().unwrap_or("").to_string());
                }
                global_lines.push(line);
            }
            (Instruction::From { image, platform }, _) => {
                let stage = stage(&stages, line, image, platform.as_ref(), &global)?;
                stages.push(stage);
            }
            (_, None) => return Err(line.error("a Dockerfile must begin with FROM (only ARG may come before it)")),
            (_, Some(s)) => s.lines.push(line),
        }
    }
    if stages.is_empty() {
        return Err(BuildError::Dockerfile {
            line: 1,
            message: "no FROM instruction".into(),
        });
    }
    let target = match target {
        None => stages.len() - 1,
        Some(t) => stages
            .iter()
            .position(|s| s.name.as_deref() == Some(t.to_ascii_lowercase().as_str()))
            .ok_or_else(|| BuildError::Target {
                target: t.to_string(),
                stages: stages.iter().map(StagePlan::label).collect::<Vec<_>>().join(", "),
            })?,
    };
    // What each stage needs: its base stage, the stages it copies (or binds) from.
    let mut needs: Vec<BTreeSet<usize>> = Vec::new();
    for s in &stages {
        let mut n = BTreeSet::new();
        if let StageBase::Stage(b) = s.base {
            n.insert(b);
        }
        for line in &s.lines {
            let froms: Vec<&String> = match &line.instruction {
                Instruction::Copy(c) | Instruction::Add(c) => c.from.iter().collect(),
                Instruction::Run(_, flags) => flags
                    .mounts
                    .iter()
                    .filter_map(|m| match m {
                        RunMount::Bind(b) => b.from.as_ref(),
                        _ => None,
                    })
                    .collect(),
                _ => Vec::new(),
            };
            for from in froms {
                if let CopySource::Stage(k) = copy_source(&stages[..s.index], line, s.index, from, &global)? {
                    n.insert(k);
                }
            }
        }
        needs.push(n);
    }
    let mut wanted = BTreeSet::from([target]);
    let mut todo = vec![target];
    while let Some(i) = todo.pop() {
        for &k in &needs[i] {
            if wanted.insert(k) {
                todo.push(k);
            }
        }
    }
    Ok(Plan {
        global,
        global_lines,
        stages,
        order: wanted.into_iter().collect(),
        declared,
    })
}

/// One `FROM IMAGE [AS NAME]`, its variables substituted from the global ARGs.
fn stage<'l>(
    earlier: &[StagePlan<'l>],
    line: &'l Line,
    image: &Args,
    platform: Option<&Args>,
    global: &BTreeMap<String, String>,
) -> Result<StagePlan<'l>, BuildError> {
    let ws = image.words(global).map_err(|e| line.error(e))?;
    let (image, name) = match ws.as_slice() {
        [image] => (image.clone(), None),
        [image, as_, name] if as_.eq_ignore_ascii_case("as") => (image.clone(), Some(name.to_ascii_lowercase())),
        _ => return Err(line.error("expected FROM IMAGE [AS NAME]")),
    };
    if image.is_empty() {
        return Err(line.error("the image name is empty (an ARG without a value?)"));
    }
    if let Some(n) = &name {
        let mut chars = n.chars();
        let valid = chars.next().is_some_and(|c| c.is_ascii_lowercase())
            && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.'));
        if !valid {
            return Err(line.error(format!(
                "invalid stage name {n:?}: a letter, then letters, digits, '-', '_' or '.'"
            )));
        }
        if earlier.iter().any(|s| s.name.as_deref() == Some(n.as_str())) {
            return Err(line.error(format!("duplicate stage name {n:?}")));
        }
    }
    let platform = match platform {
        Some(p) => {
            let p = p.words(global).map_err(|e| line.error(e))?.join("");
            Some(Platform::parse(&p).map_err(|e| line.error(e))?)
        }
        None => None,
    };
    let lower = image.to_ascii_lowercase();
    let base = if let Some(s) = earlier.iter().find(|s| s.name.as_deref() == Some(lower.as_str())) {
        StageBase::Stage(s.index)
    } else if lower == "scratch" {
        StageBase::Scratch
    } else {
        StageBase::Image(image)
    };
    Ok(StagePlan {
        index: earlier.len(),
        name,
        from: line,
        base,
        platform,
        lines: Vec::new(),
    })
}

/// `--from=raw` in stage `current`: a name or index of one of `earlier`,
/// else an image reference.
fn copy_source(
    earlier: &[StagePlan],
    line: &Line,
    current: usize,
    raw: &str,
    global: &BTreeMap<String, String>,
) -> Result<CopySource, BuildError> {
    let value = Args {
        text: raw.to_string(),
        escape: '\\',
    }
    .words(global)
    .map_err(|e| line.error(e))?
    .join("");
    if value.is_empty() {
        return Err(line.error("--from needs a stage name, a stage index or an image"));
    }
    let lower = value.to_ascii_lowercase();
    if let Some(s) = earlier.iter().find(|s| s.name.as_deref() == Some(lower.as_str())) {
        return Ok(CopySource::Stage(s.index));
    }
    if let Ok(i) = value.parse::<usize>() {
        if i >= current {
            return Err(line.error(format!(
                "--from={value}: a stage can only copy from the stages before it (0 to {})",
                current as isize - 1
            )));
        }
        return Ok(CopySource::Stage(i));
    }
    Ok(CopySource::Image(value))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dockerfile::parse;

    fn planned(text: &str, target: Option<&str>) -> Result<(Vec<usize>, Vec<StageBase>), String> {
        let lines = parse(text).map_err(|e| e.to_string())?;
        let p = plan(&lines, &BTreeMap::new(), BTreeMap::new(), target).map_err(|e| e.to_string())?;
        Ok((p.order.clone(), p.stages.iter().map(|s| s.base.clone()).collect()))
    }

    const THREE: &str = "ARG V=1.2\nFROM gcc:${V} AS build\nRUN make\nFROM build AS test\nRUN false\n\
                         FROM scratch\nCOPY --from=build /app /app\nCOPY --from=0 /lib /lib\n";

    #[test]
    fn only_the_stages_the_target_needs() {
        let (order, bases) = planned(THREE, None).unwrap();
        assert_eq!(order, [0, 2], "the test stage is not built");
        assert_eq!(
            bases,
            [
                StageBase::Image("gcc:1.2".into()),
                StageBase::Stage(0),
                StageBase::Scratch
            ]
        );
        assert_eq!(planned(THREE, Some("TEST")).unwrap().0, [0, 1]);
        assert_eq!(planned(THREE, Some("build")).unwrap().0, [0]);
        let e = planned(THREE, Some("nope")).unwrap_err();
        assert!(e.contains("\"nope\"") && e.contains("build, test, stage-2"), "{e}");
    }

    #[test]
    fn copy_from_an_image_or_an_earlier_stage() {
        let lines =
            parse("ARG R=reg/tools\nFROM scratch AS a\nFROM scratch\nCOPY --from=a /x /x\nCOPY --from=$R:1 /y /y\n")
                .unwrap();
        let p = plan(&lines, &BTreeMap::new(), BTreeMap::new(), None).unwrap();
        assert_eq!(p.copy_source(&lines[3], 1, "A").unwrap(), CopySource::Stage(0));
        assert_eq!(
            p.copy_source(&lines[4], 1, "$R:1").unwrap(),
            CopySource::Image("reg/tools:1".into())
        );
        assert_eq!(p.order, [0, 1]);
        // A RUN's bind mount from a stage needs that stage too.
        let (order, _) = planned(
            "FROM scratch AS a\nFROM scratch AS b\nFROM scratch\nRUN --mount=type=bind,from=a,target=/a true\n",
            None,
        )
        .unwrap();
        assert_eq!(order, [0, 2]);
        for bad in [
            "FROM scratch\nCOPY --from=0 /x /x\n",
            "FROM scratch\nCOPY --from=1 /x /x\nFROM scratch\n",
        ] {
            let e = planned(bad, None).unwrap_err();
            assert!(e.contains("can only copy from the stages before it"), "{e}");
        }
    }

    #[test]
    fn stage_names_and_from_lines() {
        for (bad, expected) in [
            ("FROM scratch AS 1x\n", "invalid stage name"),
            (
                "FROM scratch AS a\nFROM scratch AS A\n",
                "line 2: FROM: duplicate stage name \"a\"",
            ),
            ("FROM scratch AS\n", "expected FROM IMAGE [AS NAME]"),
            ("ARG B\nFROM $B\n", "the image name is empty"),
            ("ENV A=1\nFROM scratch\n", "must begin with FROM"),
        ] {
            let e = planned(bad, None).unwrap_err();
            assert!(e.contains(expected), "{bad:?}: {e}");
        }
        // A later stage's name is an image, as docker takes it.
        let (_, bases) = planned("FROM later\nFROM scratch AS later\n", Some("later")).unwrap();
        assert_eq!(bases[0], StageBase::Image("later".into()));
    }
}
