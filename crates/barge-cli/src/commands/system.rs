//! `update`, `system df` and `system prune`: a container's limits changed
//! in place, the store's disk use, and every prune at once.

use super::containers::{self, each, fail, runtime};
use super::prune_filter::PruneFilter;
use super::Env;
use crate::args::{DfArgs, SystemPruneArgs, UpdateArgs};
use crate::failure::{Context, Failure};
use crate::format::{self, Template};
use barge_oci::{Digest, Reference};
use barge_runtime::container::{Container, State, Status};
use barge_runtime::limits::Limits;
use barge_runtime::restart::RestartPolicy;
use barge_runtime::update::Update;
use barge_runtime::Runtime;
use barge_store::Store;
use serde_json::{json, Value};
use std::collections::HashMap;

/// `barge update`: docker's flags; each container's name as given once done.
pub fn update(env: &Env, a: &UpdateArgs) -> Result<i32, Failure> {
    let limits = a.resources.limits();
    let restart = a
        .restart
        .as_deref()
        .map(RestartPolicy::parse)
        .transpose()
        .map_err(|e| fail("--restart", e))?;
    if limits == Limits::default() && restart.is_none() {
        return Err(Failure::msg(
            "you must provide one or more flags when using this command",
        ));
    }
    let u = Update { limits, restart };
    each(env, &a.containers, |rt, c| {
        rt.update(c, &u)
            .map_err(|e| fail(format!("Cannot update container {}", c.meta.id), e))
    })
}

/// One image as `system df` counts it: its layers' bytes, those another
/// image shares, and the containers made from it.
struct ImageUsage {
    id: Digest,
    names: Vec<String>,
    created: Option<String>,
    size: u64,
    shared: u64,
    containers: usize,
}

/// Every stored image's usage, and the bytes of all layers (each once).
fn image_usage(store: &Store) -> Result<(Vec<ImageUsage>, u64), Failure> {
    let graph = store.graph().context(|| "reading the images".to_string())?;
    let used = store.container_images();
    let entries = store.entries().context(|| "listing images".to_string())?;
    let layers_of = |top: Option<&Digest>| {
        let mut out = Vec::new();
        let mut cur = top;
        while let Some(layer) = cur.and_then(|c| graph.layers.get(c)) {
            if out.len() > graph.layers.len() {
                break;
            }
            out.push(layer);
            cur = layer.parent.as_ref();
        }
        out
    };
    let mut uses: HashMap<&Digest, usize> = HashMap::new();
    for image in &graph.images {
        for layer in layers_of(image.top.as_ref()) {
            *uses.entry(&layer.chain_id).or_default() += 1;
        }
    }
    let mut images: Vec<ImageUsage> = graph
        .images
        .iter()
        .map(|image| {
            let layers = layers_of(image.top.as_ref());
            ImageUsage {
                id: image.id.clone(),
                names: image.names.clone(),
                created: entries
                    .iter()
                    .find(|e| e.meta.image_id == image.id)
                    .and_then(|e| e.meta.created.clone()),
                size: layers.iter().map(|l| l.size).sum(),
                shared: layers.iter().filter(|l| uses[&l.chain_id] > 1).map(|l| l.size).sum(),
                containers: used.get(&image.id).map_or(0, Vec::len),
            }
        })
        .collect();
    images.sort_by(|a, b| b.created.cmp(&a.created));
    Ok((images, graph.layers.values().map(|l| l.size).sum()))
}

/// One volume as `system df` counts it.
struct VolumeUsage {
    name: String,
    /// Containers that mount it.
    links: usize,
    size: u64,
}

/// The store's local volumes (the volumes module's records) and how many
/// containers mount each.
fn local_volumes(rt: &Runtime, containers: &[Container]) -> Result<Vec<VolumeUsage>, Failure> {
    let volumes = rt.volumes();
    let list = volumes.list().context(|| "listing volumes".to_string())?;
    Ok(list
        .into_iter()
        .map(|v| VolumeUsage {
            links: Runtime::users_of(containers, &v.name).len(),
            size: volumes.size(&v.name),
            name: v.name,
        })
        .collect())
}

/// docker's RECLAIMABLE cell: the bytes, and their share of `total` when there is one.
fn reclaimable(bytes: u64, total: u64) -> String {
    match total {
        0 => format::human_size(bytes),
        t => format!("{} ({}%)", format::human_size(bytes), bytes * 100 / t),
    }
}

fn df_header(field: &str) -> String {
    match field {
        "TotalCount" => "TOTAL".into(),
        "ID" => "IMAGE ID".into(),
        "CreatedSince" => "CREATED".into(),
        "SharedSize" => "SHARED SIZE".into(),
        "UniqueSize" => "UNIQUE SIZE".into(),
        other => other.to_uppercase(),
    }
}

/// `barge system df`: docker's summary of images, containers, local
/// volumes and build cache, or (`-v`) a section for each.
pub fn df(env: &Env, a: &DfArgs) -> Result<i32, Failure> {
    if a.verbose && a.format.is_some() {
        return Err(Failure::msg(
            "--format applies to the summary: it cannot go with --verbose, whose sections have their own columns",
        ));
    }
    let rt = runtime(env)?;
    let store = rt.store().clone();
    let (images, layers_size) = image_usage(&store)?;
    let containers = rt.list().map_err(|e| fail("listing containers", e))?;
    let states: Vec<State> = containers
        .iter()
        .map(|c| c.state().unwrap_or_else(|_| State::created()))
        .collect();
    let sizes: Vec<u64> = containers.iter().map(Container::size).collect();
    let volumes = local_volumes(&rt, &containers)?;
    let cache = barge_builder::usage(&store).context(|| "reading the build cache".to_string())?;
    if a.verbose {
        return df_verbose(&rt, &images, (&containers, &states, &sizes), &volumes, &cache);
    }
    // docker counts as in use only the unique bytes of images with containers.
    let used: u64 = images
        .iter()
        .filter(|i| i.containers > 0)
        .map(|i| i.size - i.shared)
        .sum();
    let active = |s: &State| s.status == Status::Running || s.restarting;
    let container_total: u64 = sizes.iter().sum();
    let idle: u64 = states
        .iter()
        .zip(&sizes)
        .filter(|(s, _)| !active(s))
        .map(|(_, n)| n)
        .sum();
    let volume_total: u64 = volumes.iter().map(|v| v.size).sum();
    let unused: u64 = volumes.iter().filter(|v| v.links == 0).map(|v| v.size).sum();
    let cache_size: u64 = cache.iter().filter(|r| !r.shared).map(|r| r.size).sum();
    let row = |kind: &str, total: usize, active: usize, size: u64, free: String| {
        json!({"Type": kind, "TotalCount": total.to_string(), "Active": active.to_string(),
               "Size": format::human_size(size), "Reclaimable": free})
    };
    let rows = [
        row(
            "Images",
            images.len(),
            images.iter().filter(|i| i.containers > 0).count(),
            layers_size,
            reclaimable(layers_size.saturating_sub(used), layers_size),
        ),
        row(
            "Containers",
            containers.len(),
            states.iter().filter(|s| active(s)).count(),
            container_total,
            reclaimable(idle, container_total),
        ),
        row(
            "Local Volumes",
            volumes.len(),
            volumes.iter().filter(|v| v.links > 0).count(),
            volume_total,
            reclaimable(unused, volume_total),
        ),
        row(
            "Build Cache",
            cache.len(),
            0,
            cache_size,
            format::human_size(cache_size),
        ),
    ];
    let src = a
        .format
        .as_deref()
        .unwrap_or("table {{.Type}}\t{{.TotalCount}}\t{{.Active}}\t{{.Size}}\t{{.Reclaimable}}");
    let t = Template::parse(src).context(|| "--format".to_string())?;
    format::print_rows(&t, &rows, &df_header).context(|| "--format".to_string())?;
    Ok(0)
}

/// `system df -v`: docker's four sections.
fn df_verbose(
    rt: &Runtime,
    images: &[ImageUsage],
    (containers, states, sizes): (&[Container], &[State], &[u64]),
    volumes: &[VolumeUsage],
    cache: &[barge_builder::CacheRecord],
) -> Result<i32, Failure> {
    let now = format::now();
    let ago = |secs: i64| format!("{} ago", format::human_duration(now - secs));
    let table = |src: &str, rows: &[Value], header: &dyn Fn(&str) -> String| {
        let t = Template::parse(src).context(|| "--format".to_string())?;
        format::print_rows(&t, rows, header).context(|| "--format".to_string())
    };
    println!("Images space usage:\n");
    let rows: Vec<Value> = images
        .iter()
        .map(|i| {
            // The first tag, as docker shows it; `<none>` for a dangling image.
            let tagged = i
                .names
                .iter()
                .filter_map(|n| Reference::parse(n).ok())
                .find(|r| r.tag().is_some());
            json!({
                "Repository": tagged.as_ref().map_or("<none>".into(), Reference::familiar_name),
                "Tag": tagged.as_ref().and_then(|r| r.tag()).unwrap_or("<none>"),
                "ID": i.id.short(),
                "CreatedSince": format::since(i.created.as_deref(), now),
                "Size": format::human_size(i.size),
                "SharedSize": format::human_size(i.shared),
                "UniqueSize": format::human_size(i.size - i.shared),
                "Containers": i.containers.to_string(),
            })
        })
        .collect();
    table(
        "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}\t{{.SharedSize}}\t{{.UniqueSize}}\t{{.Containers}}",
        &rows,
        &df_header,
    )?;
    println!("\nContainers space usage:\n");
    let rows: Vec<Value> = containers
        .iter()
        .zip(states)
        .zip(sizes)
        .map(|((c, st), size)| {
            let paused = containers::state_name(rt, c, st) == "paused";
            json!({
                "ID": c.short_id(),
                "Image": c.meta.image,
                "Command": format!("\"{}\"", format::ellipsis(&containers::command_text(c), 20)),
                "LocalVolumes": c.meta.volumes.len().to_string(),
                "Size": format::human_size(*size),
                "RunningFor": format::since(Some(&c.meta.created), now),
                "Status": containers::status_text(st, now, paused, barge_runtime::health::current(c, st).as_ref()),
                "Names": c.meta.name,
            })
        })
        .collect();
    let header = |f: &str| match f {
        "ID" => "CONTAINER ID".into(),
        "LocalVolumes" => "LOCAL VOLUMES".into(),
        "RunningFor" => "CREATED".into(),
        other => other.to_uppercase(),
    };
    table(
        "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.LocalVolumes}}\t{{.Size}}\t{{.RunningFor}}\t{{.Status}}\t{{.Names}}",
        &rows,
        &header,
    )?;
    println!("\nLocal Volumes space usage:\n");
    let rows: Vec<Value> = volumes
        .iter()
        .map(|v| json!({"Name": v.name, "Links": v.links.to_string(), "Size": format::human_size(v.size)}))
        .collect();
    let header = |f: &str| match f {
        "Name" => "VOLUME NAME".into(),
        other => other.to_uppercase(),
    };
    table("table {{.Name}}\t{{.Links}}\t{{.Size}}", &rows, &header)?;
    let cache_size: u64 = cache.iter().filter(|r| !r.shared).map(|r| r.size).sum();
    println!("\nBuild cache usage: {}\n", format::human_size(cache_size));
    let rows: Vec<Value> = cache
        .iter()
        .map(|r| {
            json!({
                "ID": r.id.chars().take(12).collect::<String>(),
                "CacheType": r.kind,
                "Size": format::human_size(r.size),
                "CreatedSince": ago(r.modified),
                "LastUsedSince": ago(r.modified),
                "UsageCount": "0",
                "Shared": r.shared.to_string(),
            })
        })
        .collect();
    let header = |f: &str| match f {
        "ID" => "CACHE ID".into(),
        "CacheType" => "CACHE TYPE".into(),
        "CreatedSince" => "CREATED".into(),
        "LastUsedSince" => "LAST USED".into(),
        "UsageCount" => "USAGE".into(),
        other => other.to_uppercase(),
    };
    table(
        "table {{.ID}}\t{{.CacheType}}\t{{.Size}}\t{{.CreatedSince}}\t{{.LastUsedSince}}\t{{.UsageCount}}\t{{.Shared}}",
        &rows,
        &header,
    )?;
    Ok(0)
}

/// `system prune --volumes`: the volumes module's prune of the volumes
/// no container mounts that `filter` selects (by label and creation time).
fn prune_volumes(env: &Env, filter: &PruneFilter) -> Result<(u64, String), Failure> {
    let rt = runtime(env)?;
    let (removed, freed) = rt
        .prune_volumes(&|v| {
            let created = barge_oci::time::parse_rfc3339(&v.created).map_or(0, |t| t.0);
            filter.selects(&v.labels, created)
        })
        .context(|| "pruning volumes".to_string())?;
    let mut out = String::new();
    if !removed.is_empty() {
        out.push_str("Deleted Volumes:\n");
        for n in &removed {
            out.push_str(&format!("{n}\n"));
        }
    }
    Ok((freed, out))
}

/// docker's warning before `system prune`: what will go, and the filters.
fn prune_warning(a: &SystemPruneArgs) -> String {
    let mut items = vec![
        "all stopped containers",
        "all networks not used by at least one container",
    ];
    if a.volumes {
        items.push("all volumes not used by at least one container");
    }
    items.push(match a.all {
        true => "all images without at least one container associated to them",
        false => "all dangling images",
    });
    items.push(match a.all {
        true => "all build cache",
        false => "all dangling build cache",
    });
    let mut text = String::from("WARNING! This will remove:\n");
    for item in items {
        text.push_str(&format!("  - {item}\n"));
    }
    if !a.filters.is_empty() {
        let mut filters = a.filters.clone();
        filters.sort();
        text.push_str("\n  Items to be pruned will be filtered with:\n");
        for f in filters {
            text.push_str(&format!("  - {f}\n"));
        }
    }
    text
}

/// `barge system prune`: container, network, (volume,) image and build
/// cache prune in turn, each as its own command does it.
pub fn prune(env: &Env, a: &SystemPruneArgs) -> Result<i32, Failure> {
    let filter = PruneFilter::parse(&a.filters, format::now())?;
    if !a.force && !super::confirm(&prune_warning(a)) {
        return Ok(0);
    }
    let mut total = 0;
    let mut report = |(freed, text): (u64, String)| {
        total += freed;
        if !text.is_empty() {
            println!("{text}");
        }
    };
    report(containers::prune_containers(env, &filter)?);
    report((0, super::network::prune_networks(env, &filter)?));
    if a.volumes {
        report(prune_volumes(env, &filter)?);
    }
    report(super::images::prune_images(env, a.all, &filter)?);
    report(super::build::prune_build_cache(env, a.all, &filter)?);
    println!("Total reclaimed space: {}", format::human_size(total));
    Ok(0)
}
