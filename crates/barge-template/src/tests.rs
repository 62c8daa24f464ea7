//! Expectations taken from text/template's documentation and docker's
//! `--format` examples.

use super::*;
use serde_json::json;

fn data() -> Value {
    json!({
        "Name": "/web",
        "Id": "4f66ad9a0b2e",
        "State": {"Status": "running", "Running": true, "Pid": 4242, "ExitCode": 0},
        "Config": {"Env": ["PATH=/usr/bin", "A=1"], "Labels": {"b": "2", "a": "1"}, "Entrypoint": null},
        "NetworkSettings": {"Networks": {"bridge": {"IPAddress": "10.88.0.5"}, "alt": {"IPAddress": "10.89.0.7"}}},
        "Mounts": [],
        "Ports": ["80/tcp", "443/tcp"],
        "Size": 1.5,
        "Big": 1000000.0,
    })
}

fn r(t: &str) -> String {
    Template::parse(t)
        .unwrap_or_else(|e| panic!("{t}: {e}"))
        .render(&data())
        .unwrap_or_else(|e| panic!("{t}: {e}"))
}

fn exec_err(t: &str) -> String {
    match Template::parse(t).expect("parses").render(&data()) {
        Ok(out) => panic!("{t} rendered {out:?}"),
        Err(e) => e.to_string(),
    }
}

fn parse_err(t: &str) -> String {
    match Template::parse(t) {
        Ok(_) => panic!("{t} parsed"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn fields_and_missing_keys() {
    assert_eq!(r("{{.Name}} {{.State.Status}}"), "/web running");
    assert_eq!(r("{{.Nope}}"), "<no value>");
    assert_eq!(r("{{.Config.Entrypoint}}"), "<no value>");
    assert!(exec_err("{{.Config.Entrypoint.X}}").contains("nil pointer evaluating .X"));
    assert!(exec_err("{{.Name.X}}").contains("can't evaluate field X in type string"));
    assert_eq!(r("{{.State}}"), "map[ExitCode:0 Pid:4242 Running:true Status:running]");
    assert_eq!(r("{{.Ports}}"), "[80/tcp 443/tcp]");
    assert_eq!(r("{{.Size}} {{.Big}} {{.State.Pid}}"), "1.5 1e+06 4242");
}

#[test]
fn the_network_address_idiom() {
    assert_eq!(
        r("{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}"),
        "10.89.0.710.88.0.5"
    );
    assert_eq!(
        r("{{range $name, $n := .NetworkSettings.Networks}}{{$name}}={{$n.IPAddress}} {{end}}"),
        "alt=10.89.0.7 bridge=10.88.0.5 "
    );
}

#[test]
fn range_index_else_break_continue() {
    assert_eq!(
        r("{{range $i, $e := .Ports}}{{$i}}:{{$e}},{{end}}"),
        "0:80/tcp,1:443/tcp,"
    );
    assert_eq!(r("{{range .Mounts}}x{{else}}none{{end}}"), "none");
    assert_eq!(r("{{range .Config.Entrypoint}}x{{else}}none{{end}}"), "none");
    assert_eq!(
        r("{{range .Ports}}{{if eq . \"443/tcp\"}}{{break}}{{end}}{{.}};{{end}}"),
        "80/tcp;"
    );
    assert_eq!(
        r("{{range .Ports}}{{if eq . \"80/tcp\"}}{{continue}}{{end}}{{.}};{{end}}"),
        "443/tcp;"
    );
    assert_eq!(r("{{range 3}}{{.}}{{end}}"), "012");
    assert_eq!(r("{{range .Ports}}{{$.Name}}{{end}}"), "/web/web");
    assert!(exec_err("{{range .Name}}{{end}}").contains("range can't iterate over /web"));
    assert!(exec_err("{{range 22222222222222222}}{{end}}").contains("more than 1000000 range iterations"));
    assert!(exec_err("{{range 1000}}{{range 1000}}{{range 10}}{{end}}{{end}}{{end}}").contains("range iterations"));
}

#[test]
fn conditionals_and_with() {
    assert_eq!(r("{{if .State.Running}}up{{else}}down{{end}}"), "up");
    assert_eq!(r("{{if .Mounts}}m{{else if .Ports}}p{{else}}n{{end}}"), "p");
    assert_eq!(r("{{if not .Mounts}}empty{{end}}"), "empty");
    assert_eq!(r("{{with .State}}{{.Pid}}{{end}}"), "4242");
    assert_eq!(r("{{with .Config.Entrypoint}}{{.}}{{else}}unset{{end}}"), "unset");
    assert_eq!(r("{{with $x := .State.Status}}{{$x}}{{end}}"), "running");
    assert_eq!(r("{{if and .State.Running (eq .State.ExitCode 0)}}ok{{end}}"), "ok");
    assert_eq!(r("{{or .Nope .Name}}"), "/web");
    assert_eq!(r("{{and .Name .Mounts}}"), "[]");
    // `and` stops at the first false argument: the error is never reached.
    assert_eq!(r("{{and .Mounts (index .Ports 7)}}"), "[]");
}

#[test]
fn comparisons() {
    assert_eq!(r("{{eq .State.Status \"exited\" \"running\"}}"), "true");
    assert_eq!(
        r("{{ne .State.Pid 1}} {{lt 1 2}} {{le 2 2}} {{gt \"b\" \"a\"}} {{ge 1.5 2}}"),
        "true true true true false"
    );
    assert_eq!(r("{{eq .Size 1.5}} {{eq .State.Pid 4242.0}}"), "true true");
    assert!(exec_err("{{eq .Name 1}}").contains("incompatible types for comparison"));
    assert!(exec_err("{{lt .Ports 1}}").contains("invalid type for comparison"));
}

#[test]
fn variables_and_pipelines() {
    assert_eq!(r("{{$n := .Name}}{{$n}}"), "/web");
    assert_eq!(r("{{$n := 1}}{{if true}}{{$n = 2}}{{end}}{{$n}}"), "2");
    assert_eq!(r("{{.Name | printf \"%q\"}}"), "\"/web\"");
    assert_eq!(r("{{.State.Status | upper | printf \"<%s>\"}}"), "<RUNNING>");
    assert_eq!(
        r("{{(index .Config.Env 1)}} {{(index .NetworkSettings.Networks \"bridge\").IPAddress}}"),
        "A=1 10.88.0.5"
    );
    assert!(parse_err("{{$x}}").contains("undefined variable: $x"));
    assert!(exec_err("{{.Name .State}}").contains("can't give argument to non-function"));
    // docker's `.Label "key"`: a map-valued field given a key.
    assert_eq!(r("{{.Config.Labels \"a\"}}|{{.Config.Labels \"none\"}}|"), "1||");
    assert!(exec_err("{{.Config.Labels 1}}").contains("can't give argument to non-function"));
    assert!(parse_err("{{.Name | .State}}").contains("only a function can follow"));
}

#[test]
fn builtin_functions() {
    assert_eq!(r("{{len .Ports}} {{len .Config.Labels}} {{len .Name}}"), "2 2 4");
    assert_eq!(r("{{index .Config.Labels \"a\"}} {{index .Ports 1}}"), "1 443/tcp");
    assert!(exec_err("{{index .Ports 2}}").contains("index out of range"));
    assert_eq!(r("{{slice .Name 1}} {{slice .Ports 0 1}}"), "web [80/tcp]");
    assert_eq!(r("{{print 1 2 \"a\" 3}}"), "1 2a3");
    assert_eq!(r("{{println .Name 1}}"), "/web 1\n");
    assert_eq!(
        r("{{printf \"%-6s|%5d|%05.1f|%x|%v|%t\" .Name .State.Pid .Size 255 .Mounts true}}"),
        "/web  | 4242|001.5|ff|[]|true"
    );
    assert_eq!(r("{{printf \"%d\" .Name}}"), "%!d(string=/web)");
    assert_eq!(r("{{printf \"%s %s\" .Name}}"), "/web %!s(MISSING)");
    assert_eq!(r("{{printf \"%v\" .Config.Entrypoint}}"), "<nil>");
    assert_eq!(
        r("{{printf \"%5555555555s|%.2000000s\" 1 2}}"),
        "%!(BADWIDTH)1|%!(BADPREC)2"
    );
    assert_eq!(r("{{printf \"%2000000d\" 1}}"), "%!(BADWIDTH)1");
}

#[test]
fn runaway_templates_stop_with_an_error() {
    assert!(exec_err("{{pad 1 2000000 0}}").contains("a padding over"));
    let doubling = "{{$x := \"0123456789abcdef\"}}{{range 30}}{{$x = printf \"%s%s\" $x $x}}{{end}}";
    assert!(exec_err(doubling).contains("passes 16 MiB"), "{}", exec_err(doubling));
    let wide = "{{range 100}}{{printf \"%1000000s\" \"\"}}{{end}}";
    assert!(exec_err(wide).contains("the output passes 16 MiB"));
}

#[test]
fn docker_functions() {
    assert_eq!(r("{{json .Config.Labels}}"), r#"{"b":"2","a":"1"}"#);
    assert_eq!(r("{{json .Config.Entrypoint}}"), "null");
    assert_eq!(r("{{json \"<a&b>\"}}"), r#""<a&b>""#);
    assert_eq!(r("{{join .Config.Env \",\"}}"), "PATH=/usr/bin,A=1");
    assert_eq!(r("{{split \"a:b:c\" \":\"}}"), "[a b c]");
    assert_eq!(r("{{index (split .Id \"a\") 0}}"), "4f66");
    assert_eq!(r("{{lower \"ABC\"}}{{upper .State.Status}}"), "abcRUNNING");
    assert_eq!(r("{{title \"hello wide-world\"}}"), "Hello Wide-World");
    assert_eq!(r("{{truncate .Id 4}}|{{pad .Name 1 2}}|"), "4f66| /web  |");
}

#[test]
fn text_trimming_comments_and_literals() {
    assert_eq!(r("a  {{- .Name -}}  b"), "a/webb");
    assert_eq!(r("{{/* a comment */}}x{{- /* trimmed */ -}} y"), "xy");
    assert_eq!(
        r("{{-3}} {{ 0x1F }} {{ 1e3 }} {{ 'a' }} {{ `raw\\n` }} {{ \"q\\t\\u00e9\" }}"),
        "-3 31 1000 97 raw\\n q\té"
    );
    assert_eq!(r("{{\"}}\"}}"), "}}");
    assert_eq!(r("no actions"), "no actions");
    assert_eq!(r(""), "");
}

#[test]
fn malformed_templates_are_refused() {
    for (t, want) in [
        ("{{.Name", "unclosed action"),
        ("{{if .Name}}x", "has no {{end}}"),
        ("{{end}}", "unexpected {{end}}"),
        ("{{else}}", "unexpected {{else}}"),
        ("{{nosuch .X}}", "function \"nosuch\" not defined"),
        ("{{break}}", "outside {{range}}"),
        ("{{template \"x\"}}", "not supported"),
        ("{{(.Name}}", "unclosed ("),
        ("{{\"abc}}", "unterminated quoted string"),
        ("{{/* open }}", "unclosed comment"),
        ("{{if .A}}{{else}}{{else}}{{end}}", "a second {{else}}"),
        ("{{}}", "missing value for command"),
        ("{{nil}}", "nil is not a command"),
        ("{{ 1x }}", "bad number syntax"),
        ("{{ # }}", "unexpected"),
    ] {
        let e = parse_err(t);
        assert!(e.contains(want), "{t}: {e}");
        assert!(e.starts_with("template parsing error: "), "{e}");
    }
    let deep = format!("{}x{}", "{{if 1}}".repeat(200), "{{end}}".repeat(200));
    assert!(parse_err(&deep).contains("nested"));
    let parens = format!("{{{{{}1{}}}}}", "(".repeat(300), ")".repeat(300));
    assert!(parse_err(&parens).contains("nested"));
}

#[test]
fn root_paths_name_what_the_template_reads() {
    let paths = |t: &str| Template::parse(t).expect("parses").root_paths();
    assert_eq!(
        paths("{{.Repository}}:{{.Tag}} {{range .Ports}}{{.X}}{{$.Size}}{{end}}"),
        Some(vec![
            vec!["Repository".to_string()],
            vec!["Tag".to_string()],
            vec!["Ports".to_string()],
            vec!["Size".to_string()],
        ])
    );
    assert_eq!(paths("{{json .}}"), None);
    assert_eq!(paths("{{range .A}}{{$}}{{end}}"), None);
    assert_eq!(paths("{{with .A}}{{.}}{{end}}").map(|p| p.len()), Some(1));
    let fields = Template::parse("{{.A.B}} {{upper .C}}").expect("parses").root_fields();
    assert_eq!(fields, Some(["A".to_string(), "C".to_string()].into_iter().collect()));
}
