//! `barge images`, `tag`, `rmi`, `image prune`, `history`, `inspect`.

use super::prune_filter::PruneFilter;
use super::Env;
use crate::args::{HistoryArgs, ImagesArgs, InspectArgs, PruneArgs, RmiArgs, TagArgs};
use crate::failure::{Context, Failure};
use crate::format::{self, tabulate, Template};
use barge_oci::{Digest, Reference};
use barge_store::{ImageEntry, RemoveEvent, Store};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};

/// One row of `barge images`.
struct Row {
    repository: String,
    tag: String,
    digest: Option<Digest>,
    /// The reference a `reference=` filter matches against.
    reference: Option<Reference>,
    id: Digest,
    created: Option<String>,
    created_secs: i64,
    size: u64,
}

/// What every row of one image shows alike, formatted once per image.
struct ImageStrings {
    id: String,
    created_at: String,
    created_since: String,
    size: String,
}

impl ImageStrings {
    fn of(row: &Row, no_trunc: bool, now: i64) -> ImageStrings {
        ImageStrings {
            id: if no_trunc {
                row.id.to_string()
            } else {
                row.id.short().to_string()
            },
            created_at: format::go_time(row.created.as_deref()),
            created_since: format::since(row.created.as_deref(), now),
            size: format::human_size(row.size),
        }
    }
}

impl Row {
    /// The row as docker's JSON; only `fields` when given (what a template reads).
    fn to_json(&self, s: &ImageStrings, fields: Option<&BTreeSet<String>>) -> Value {
        let mut m = serde_json::Map::new();
        let mut put = |k: &str, v: &dyn Fn() -> String| {
            if fields.is_none_or(|f| f.contains(k)) {
                m.insert(k.to_string(), Value::String(v()));
            }
        };
        put("Containers", &|| "N/A".into());
        put("CreatedAt", &|| s.created_at.clone());
        put("CreatedSince", &|| s.created_since.clone());
        put("Digest", &|| {
            self.digest
                .as_ref()
                .map(|d| d.to_string())
                .unwrap_or_else(|| "<none>".into())
        });
        put("ID", &|| s.id.clone());
        put("Repository", &|| self.repository.clone());
        put("SharedSize", &|| "N/A".into());
        put("Size", &|| s.size.clone());
        put("Tag", &|| self.tag.clone());
        put("UniqueSize", &|| "N/A".into());
        put("VirtualSize", &|| s.size.clone());
        Value::Object(m)
    }
}

/// Column names of `--format 'table …'` fields, as docker names them.
fn image_header(field: &str) -> String {
    match field {
        "ID" => "IMAGE ID".into(),
        "CreatedSince" => "CREATED".into(),
        "CreatedAt" => "CREATED AT".into(),
        "VirtualSize" => "SIZE".into(),
        other => other.to_uppercase(),
    }
}

/// Prints JSON-able rows in the `--format` mode asked for (or the default table).
fn print_rows(
    rows: &[Value],
    format: Option<&str>,
    default_table: &str,
    header: &dyn Fn(&str) -> String,
) -> Result<(), Failure> {
    use std::io::Write as _;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let written = |e: std::io::Error| Failure::new("writing the list", e);
    match format {
        Some("json") => {
            for r in rows {
                writeln!(out, "{}", crate::format::sanitized(r)).map_err(written)?;
            }
        }
        other => {
            let src = match other {
                None | Some("table") => default_table.to_string(),
                Some(t) => t.to_string(),
            };
            let t = Template::parse(&src).context(|| "--format".to_string())?;
            let mut lines = Vec::with_capacity(rows.len() + 1);
            if t.table {
                lines.push(t.header(header));
            }
            for r in rows {
                lines.push(t.render(r).context(|| "--format".to_string())?);
            }
            if t.table {
                write!(out, "{}", tabulate(&lines)).map_err(written)?;
            } else {
                for l in lines {
                    writeln!(out, "{l}").map_err(written)?;
                }
            }
        }
    }
    out.flush().map_err(written)?;
    Ok(())
}

/// `barge image graph`, `barge images --dot|--tree`.
pub fn graph(env: &Env, tree: bool) -> Result<i32, Failure> {
    let g = env
        .store()?
        .graph()
        .context(|| "reading the image hierarchy".to_string())?;
    print!(
        "{}",
        if tree {
            crate::graph::tree(&g)
        } else {
            crate::graph::dot(&g)
        }
    );
    Ok(0)
}

pub fn list(env: &Env, a: &ImagesArgs) -> Result<i32, Failure> {
    if a.dot || a.tree {
        return graph(env, a.tree);
    }
    let store = env.store()?;
    let entries = store.entries().context(|| "listing images".to_string())?;
    let filters = Filters::parse(&a.filters, a.reference.as_deref(), &store, &entries)?;
    let mut by_image: BTreeMap<&Digest, Vec<&ImageEntry>> = BTreeMap::new();
    for e in &entries {
        by_image.entry(&e.meta.image_id).or_default().push(e);
    }
    let mut rows = Vec::new();
    for (id, es) in by_image {
        let first = es[0];
        let created_secs = first
            .meta
            .created
            .as_deref()
            .and_then(barge_oci::time::parse_rfc3339)
            .map(|t| t.0)
            .unwrap_or(0);
        // docker: dangling means without a tag (digest references do not count).
        let dangling = es
            .iter()
            .all(|e| e.reference.as_ref().is_none_or(|r| r.tag().is_none()));
        if !filters.keep_image(&store, first, dangling, created_secs)? {
            continue;
        }
        let row = |r: Option<&Reference>, tag: &str, digest: Option<Digest>| Row {
            repository: r.map(|r| r.familiar_name()).unwrap_or_else(|| "<none>".into()),
            tag: tag.to_string(),
            digest,
            reference: r.cloned(),
            id: id.clone(),
            created: first.meta.created.clone(),
            created_secs,
            size: first.meta.size,
        };
        let mut image_rows = Vec::new();
        for e in &es {
            let Some(r) = &e.reference else { continue };
            if let Some(tag) = r.tag() {
                let digest = e.meta.repo_digest.clone().or_else(|| {
                    es.iter()
                        .filter_map(|o| o.reference.as_ref())
                        .find(|o| o.name() == r.name())
                        .and_then(|o| o.digest().cloned())
                });
                image_rows.push(row(Some(r), tag, digest));
            }
        }
        // A repository that holds the image by digest only is a `<none>`
        // row of its own, even when another repository tags the image.
        let mut seen: BTreeSet<String> = image_rows.iter().map(|r| r.repository.clone()).collect();
        for e in &es {
            if let Some(r) = e.reference.as_ref().filter(|r| r.tag().is_none()) {
                if seen.insert(r.familiar_name()) {
                    image_rows.push(row(Some(r), "<none>", r.digest().cloned()));
                }
            }
        }
        if image_rows.is_empty() {
            image_rows.push(row(None, "<none>", None));
        }
        rows.extend(image_rows.into_iter().filter(|r| filters.keep_row(r)));
    }
    rows.sort_by(|x, y| {
        y.created_secs
            .cmp(&x.created_secs)
            .then(x.repository.cmp(&y.repository))
            .then(x.tag.cmp(&y.tag))
    });

    if a.quiet {
        use std::io::Write as _;
        let mut out = std::io::BufWriter::new(std::io::stdout().lock());
        for r in &rows {
            let id = if a.no_trunc {
                r.id.to_string()
            } else {
                r.id.short().to_string()
            };
            writeln!(out, "{id}").context(|| "writing the list".to_string())?;
        }
        out.flush().context(|| "writing the list".to_string())?;
        return Ok(0);
    }
    let default = if a.digests {
        "table {{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
    } else {
        "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
    };
    let format = env.format_or_default(a.format.as_deref(), "imagesFormat");
    // Only what the template shows is formatted.
    let fields = match format.as_deref() {
        Some("json") => None,
        None | Some("table") => Template::parse(default).ok().and_then(|t| t.fields()),
        Some(f) => Template::parse(f).ok().and_then(|t| t.fields()),
    };
    let now = format::now();
    let mut strings: std::collections::HashMap<&Digest, ImageStrings> = std::collections::HashMap::new();
    let values: Vec<Value> = rows
        .iter()
        .map(|r| {
            let s = strings
                .entry(&r.id)
                .or_insert_with(|| ImageStrings::of(r, a.no_trunc, now));
            r.to_json(s, fields.as_ref())
        })
        .collect();
    print_rows(&values, format.as_deref(), default, &image_header)?;
    // The process ends now: freeing tens of thousands of small allocations
    // one by one would only cost time.
    std::mem::forget((values, rows, entries));
    Ok(0)
}

/// `--filter` of `barge images`.
struct Filters {
    dangling: Option<bool>,
    references: Vec<String>,
    labels: Vec<(String, Option<String>)>,
    before: Option<i64>,
    since: Option<i64>,
}

impl Filters {
    fn parse(
        raw: &[String],
        positional: Option<&str>,
        store: &Store,
        entries: &[ImageEntry],
    ) -> Result<Filters, Failure> {
        let mut f = Filters {
            dangling: None,
            references: Vec::new(),
            labels: Vec::new(),
            before: None,
            since: None,
        };
        if let Some(p) = positional {
            f.references.push(p.to_string());
        }
        let created_of = |name: &str| -> Result<i64, Failure> {
            let id = store.find_image(name).context(|| format!("filter on {name}"))?;
            let e = entries.iter().find(|e| e.meta.image_id == id);
            Ok(e.and_then(|e| e.meta.created.as_deref())
                .and_then(barge_oci::time::parse_rfc3339)
                .map(|t| t.0)
                .unwrap_or(0))
        };
        for item in raw {
            let (key, value) = item
                .split_once('=')
                .ok_or_else(|| Failure::msg(format!("bad format of filter (expected name=value): {item}")))?;
            match key {
                "dangling" => {
                    f.dangling = Some(match value.to_ascii_lowercase().as_str() {
                        "true" | "1" => true,
                        "false" | "0" => false,
                        _ => {
                            return Err(Failure::msg(format!(
                                "invalid filter 'dangling={value}': expected true or false"
                            )))
                        }
                    })
                }
                "reference" => f.references.push(value.to_string()),
                "label" => {
                    let (k, v) = match value.split_once('=') {
                        Some((k, v)) => (k.to_string(), Some(v.to_string())),
                        None => (value.to_string(), None),
                    };
                    f.labels.push((k, v));
                }
                "before" => f.before = Some(created_of(value)?),
                "since" => f.since = Some(created_of(value)?),
                other => return Err(Failure::msg(format!("invalid filter '{other}'"))),
            }
        }
        Ok(f)
    }

    fn keep_image(&self, store: &Store, e: &ImageEntry, dangling: bool, created: i64) -> Result<bool, Failure> {
        if self.dangling.is_some_and(|d| d != dangling) {
            return Ok(false);
        }
        if self.before.is_some_and(|b| created >= b) || self.since.is_some_and(|s| created <= s) {
            return Ok(false);
        }
        if !self.labels.is_empty() {
            let (_, config) = store
                .manifest_and_config(&e.manifest.digest)
                .context(|| format!("reading image {}", e.meta.image_id))?;
            let labels = config.labels();
            for (k, v) in &self.labels {
                match (labels.get(k), v) {
                    (Some(have), Some(want)) if have == want => {}
                    (Some(_), None) => {}
                    _ => return Ok(false),
                }
            }
        }
        Ok(true)
    }

    fn keep_row(&self, row: &Row) -> bool {
        if self.references.is_empty() {
            return true;
        }
        let Some(r) = &row.reference else { return false };
        let name = r.familiar_name();
        let full = format!("{name}:{}", row.tag);
        self.references.iter().any(|p| glob(p, &full) || glob(p, &name))
    }
}

/// Go's `path.Match`: `*` and `?` do not cross `/`; `[…]` classes with ranges and `^` negation.
fn glob(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    fn go(p: &[char], n: &[char]) -> bool {
        match p.first() {
            None => n.is_empty(),
            Some('*') => (0..=n.len())
                .take_while(|&i| i == 0 || n[i - 1] != '/')
                .any(|i| go(&p[1..], &n[i..])),
            Some('?') => n.first().is_some_and(|c| *c != '/') && go(&p[1..], &n[1..]),
            Some('[') => {
                let Some(c) = n.first() else { return false };
                let Some(end) = p.iter().skip(1).position(|x| *x == ']').map(|i| i + 1) else {
                    return false;
                };
                let class = &p[1..end];
                let (neg, class) = match class.first() {
                    Some('^') => (true, &class[1..]),
                    _ => (false, class),
                };
                let mut hit = false;
                let mut i = 0;
                while i < class.len() {
                    if i + 2 < class.len() && class[i + 1] == '-' {
                        hit |= class[i] <= *c && *c <= class[i + 2];
                        i += 3;
                    } else {
                        hit |= class[i] == *c;
                        i += 1;
                    }
                }
                hit != neg && *c != '/' && go(&p[end + 1..], &n[1..])
            }
            Some('\\') if p.len() > 1 => n.first() == Some(&p[1]) && go(&p[2..], &n[1..]),
            Some(c) => n.first() == Some(c) && go(&p[1..], &n[1..]),
        }
    }
    go(&p, &n)
}

pub fn tag(env: &Env, a: &TagArgs) -> Result<i32, Failure> {
    let target = Reference::parse_default_tag(&a.target).context(|| format!("tagging {}", a.target))?;
    if target.digest().is_some() {
        return Err(Failure::msg(format!(
            "refusing to create a tag with a digest reference: {}",
            a.target
        )));
    }
    let store = env.store()?;
    store.tag_image(&a.source, &target).context(String::new)?;
    Ok(0)
}

pub fn remove(env: &Env, a: &RmiArgs) -> Result<i32, Failure> {
    let store = env.store()?;
    let mut code = 0;
    for name in &a.images {
        match store.remove_image(name, a.force) {
            Ok(events) => {
                for e in events {
                    match e {
                        RemoveEvent::Untagged(r) => println!("Untagged: {r}"),
                        RemoveEvent::Deleted(d) => println!("Deleted: {d}"),
                    }
                }
            }
            Err(e) => {
                Failure::new("", e).print(false);
                code = 1;
            }
        }
    }
    Ok(code)
}

pub fn prune(env: &Env, a: &PruneArgs) -> Result<i32, Failure> {
    let filter = PruneFilter::parse(&a.filters, format::now())?;
    if !a.force {
        let warning = if a.all {
            "WARNING! This will remove all images without at least one container associated to them."
        } else {
            "WARNING! This will remove all dangling images."
        };
        if !super::confirm(warning) {
            return Ok(0);
        }
    }
    let (reclaimed, report) = prune_images(env, a.all, &filter)?;
    if !report.is_empty() {
        println!("{report}");
    }
    println!("Total reclaimed space: {}", format::human_size(reclaimed));
    Ok(0)
}

/// Removes the dangling images (every unused one with `all`) `filter`
/// selects: the bytes freed, and docker's report (empty when none).
pub(super) fn prune_images(env: &Env, all: bool, filter: &PruneFilter) -> Result<(u64, String), Failure> {
    let store = env.store()?;
    // An image whose config cannot be read is kept when labels are asked about.
    let mut select = |e: &ImageEntry| {
        let created = e
            .meta
            .created
            .as_deref()
            .and_then(barge_oci::time::parse_rfc3339)
            .map_or(0, |t| t.0);
        let labels = if filter.wants_labels() {
            match store.manifest_and_config(&e.manifest.digest) {
                Ok((_, config)) => config.labels(),
                Err(_) => return false,
            }
        } else {
            BTreeMap::new()
        };
        filter.selects(&labels, created)
    };
    let report = store.prune(all, &mut select).context(|| "pruning images".to_string())?;
    let mut out = String::new();
    if !report.events.is_empty() {
        out.push_str("Deleted Images:\n");
        for e in &report.events {
            match e {
                RemoveEvent::Untagged(r) => out.push_str(&format!("untagged: {r}\n")),
                RemoveEvent::Deleted(d) => out.push_str(&format!("deleted: {d}\n")),
            }
        }
    }
    Ok((report.reclaimed, out))
}

pub fn history(env: &Env, a: &HistoryArgs) -> Result<i32, Failure> {
    let store = env.store()?;
    let id = store.find_image(&a.image).context(String::new)?;
    let d = store
        .image_details(&id)
        .context(|| format!("reading image {}", a.image))?;
    let now = format::now();
    let mut layer_sizes = d.layer_sizes.iter();
    let mut rows: Vec<Value> = Vec::new();
    let history = if d.config.history.is_empty() {
        // No history: one row per layer.
        d.config
            .rootfs
            .diff_ids
            .iter()
            .map(|_| barge_oci::image::History::default())
            .collect()
    } else {
        d.config.history.clone()
    };
    for h in &history {
        let size = if h.empty_layer {
            0
        } else {
            layer_sizes.next().copied().unwrap_or(0)
        };
        let created_by = h.created_by.clone().unwrap_or_default();
        rows.push(json!({
            "Comment": h.comment.clone().unwrap_or_default(),
            "CreatedAt": if a.human { format::go_time(h.created.as_deref()) } else { h.created.clone().unwrap_or_default() },
            "CreatedBy": if a.no_trunc { created_by } else { format::ellipsis(&created_by, 45) },
            "CreatedSince": if a.human { format::since(h.created.as_deref(), now) } else { h.created.clone().unwrap_or_default() },
            "ID": "<missing>",
            "Size": if a.human { format::human_size(size) } else { size.to_string() },
        }));
    }
    rows.reverse();
    if let Some(top) = rows.first_mut() {
        top["ID"] = Value::String(if a.no_trunc {
            id.to_string()
        } else {
            id.short().to_string()
        });
    }
    if a.quiet {
        for r in &rows {
            println!("{}", r["ID"].as_str().unwrap_or_default());
        }
        return Ok(0);
    }
    let header = |f: &str| match f {
        "ID" => "IMAGE".to_string(),
        "CreatedSince" => "CREATED".to_string(),
        "CreatedBy" => "CREATED BY".to_string(),
        "CreatedAt" => "CREATED AT".to_string(),
        other => other.to_uppercase(),
    };
    print_rows(
        &rows,
        a.format.as_deref(),
        "table {{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}",
        &header,
    )?;
    Ok(0)
}

pub fn inspect(env: &Env, a: &InspectArgs, kind: Option<&str>) -> Result<i32, Failure> {
    let store = env.store()?;
    let rt = barge_runtime::Runtime::new(&store);
    let mut out = Vec::new();
    let mut failures = Vec::new();
    for name in &a.images {
        // As docker: containers first, then images, unless --type says which.
        if kind != Some("image") {
            match rt.find(name) {
                Ok(c) => {
                    out.push(super::containers::inspect_json(&rt, &c));
                    continue;
                }
                Err(e) if kind == Some("container") => {
                    failures.push(Failure::new("", e));
                    continue;
                }
                Err(_) => {}
            }
        }
        let details = store.find_image(name).and_then(|id| store.image_details(&id));
        match details {
            Ok(d) => out.push(inspect_json(&d)),
            Err(barge_store::StoreError::NoSuchImage(_)) if kind.is_none() => match rt.volumes().get(name) {
                // As docker: a volume after containers and images.
                Ok(v) => out.push(super::volumes::volume_json(&rt, &v)),
                Err(_) => failures.push(Failure::msg(format!("No such object: {name}"))),
            },
            Err(e) => failures.push(Failure::new("", e)),
        }
    }
    super::print_inspected(&out, a.format.as_deref())?;
    let failed = !failures.is_empty();
    for f in failures {
        f.print(false);
    }
    Ok(if failed { 1 } else { 0 })
}

fn inspect_json(d: &barge_store::ImageDetails) -> Value {
    let mut v = json!({
        "Id": d.id.to_string(),
        "RepoTags": d.repo_tags,
        "RepoDigests": d.repo_digests,
        "Parent": "",
        "Comment": d.config.comment.clone().unwrap_or_default(),
        "Created": d.config.created.clone().unwrap_or_default(),
        "DockerVersion": d.config.docker_version.clone().unwrap_or_default(),
        "Author": d.config.author.clone().unwrap_or_default(),
        // As the image has it: its keys in order, unknown ones kept.
        "Config": d.config.config.as_ref().map_or(Value::Null, |c| Value::Object(c.to_json())),
        "Architecture": d.config.architecture,
        "Os": d.config.os,
        "Size": d.size,
        "RootFS": {
            "Type": d.config.rootfs.kind,
            "Layers": d.config.rootfs.diff_ids.iter().map(|x| x.to_string()).collect::<Vec<_>>(),
        },
        "Descriptor": {
            "mediaType": d.manifest.media_type,
            "digest": d.manifest.digest.to_string(),
            "size": d.manifest.size,
        },
    });
    if let (Some(variant), Some(obj)) = (&d.config.variant, v.as_object_mut()) {
        obj.insert("Variant".into(), Value::String(variant.clone()));
    }
    if let (false, Some(obj)) = (d.verified_signatures.is_empty(), v.as_object_mut()) {
        obj.insert("VerifiedSignatures".into(), json!(d.verified_signatures));
    }
    v
}

/// `barge system check`.
pub fn check(env: &Env) -> Result<i32, Failure> {
    let store = env.store()?;
    let r = store.check().context(|| "checking the store".to_string())?;
    for p in &r.problems {
        println!("problem: {p}");
    }
    for l in &r.leftovers {
        println!("leftover: {l} (barge image prune removes it)");
    }
    println!(
        "Checked {} blobs, {} index rows, {} snapshots: {}",
        r.blobs,
        r.images,
        r.snapshots,
        match r.problems.len() {
            0 => "no problems".to_string(),
            1 => "1 problem".to_string(),
            n => format!("{n} problems"),
        }
    );
    Ok(if r.problems.is_empty() { 0 } else { 1 })
}

#[cfg(test)]
mod tests {
    use super::glob;

    #[test]
    fn globs_like_go_path_match() {
        assert!(glob("busybox", "busybox"));
        assert!(glob("busy*", "busybox"));
        assert!(glob("*:latest", "busybox:latest"));
        assert!(!glob("*", "library/busybox"));
        assert!(glob("*/*", "user/app"));
        assert!(glob("b?sybox", "busybox"));
        assert!(glob("[a-c]usybox", "busybox"));
        assert!(!glob("[^a-c]usybox", "busybox"));
        assert!(!glob("busy", "busybox"));
    }
}
