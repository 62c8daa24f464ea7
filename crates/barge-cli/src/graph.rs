//! Drawing the image hierarchy: Graphviz dot (as dockviz did) and a text tree.

use crate::format::human_size;
use barge_store::{Graph, LayerNode};
use std::fmt::Write as _;

fn esc(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

/// `digraph` with a box per layer and a filled box per image, edges from parent to child.
pub fn dot(g: &Graph) -> String {
    let mut out = String::from("digraph images {\n  rankdir=TB;\n  node [shape=box, fontname=\"monospace\"];\n");
    out.push_str("  \"base\" [label=\"scratch\", shape=plaintext];\n");
    for l in g.layers.values() {
        let _ = writeln!(
            out,
            "  \"{}\" [label=\"{}\\n{}\"];",
            l.chain_id,
            l.chain_id.short(),
            human_size(l.size)
        );
        let parent = l
            .parent
            .as_ref()
            .map(|p| p.to_string())
            .unwrap_or_else(|| "base".into());
        let _ = writeln!(out, "  \"{parent}\" -> \"{}\";", l.chain_id);
    }
    for i in &g.images {
        let mut label = i.id.short().to_string();
        for n in &i.names {
            label.push_str("\\n");
            label.push_str(&esc(n));
        }
        let _ = writeln!(
            out,
            "  \"image:{}\" [label=\"{label}\", style=filled, fillcolor=\"#d0e4f5\"];",
            i.id
        );
        let from = i.top.as_ref().map(|t| t.to_string()).unwrap_or_else(|| "base".into());
        let _ = writeln!(out, "  \"{from}\" -> \"image:{}\";", i.id);
    }
    out.push_str("}\n");
    out
}

/// The same hierarchy as indented text.
pub fn tree(g: &Graph) -> String {
    let mut out = String::new();
    fn walk(g: &Graph, layer: &LayerNode, depth: usize, out: &mut String) {
        let _ = writeln!(
            out,
            "{}└─{} {}",
            "  ".repeat(depth),
            layer.chain_id.short(),
            human_size(layer.size)
        );
        for i in g.images_on(Some(&layer.chain_id)) {
            let names = if i.names.is_empty() {
                "<none>".to_string()
            } else {
                i.names.join(", ")
            };
            let _ = writeln!(
                out,
                "{}└─image {} {} ({})",
                "  ".repeat(depth + 1),
                i.id.short(),
                names,
                human_size(i.size)
            );
        }
        for child in g.children(Some(&layer.chain_id)) {
            walk(g, child, depth + 1, out);
        }
    }
    for i in g.images_on(None) {
        let _ = writeln!(out, "└─image {} {}", i.id.short(), i.names.join(", "));
    }
    for base in g.children(None) {
        walk(g, base, 0, &mut out);
    }
    out
}
