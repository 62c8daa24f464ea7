//! `barge login`/`logout`/`info`, docker's config.json, credential helpers,
//! the OS keyring, and token auth against real registries.

use barge_tests::canned::{CannedServer, Response};
use barge_tests::image::{Compression, Image, LayerBuilder, Spec, Style};
use barge_tests::proxy::SlowProxy;
use barge_tests::registry::{Auth, Options, Registry, PASSWORD, USER};
use barge_tests::token::TokenOptions;
use barge_tests::{require_root_and, run_ok, test_helper_path, Barge};
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Output};

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn basic_registry() -> Registry {
    let reg = Registry::start(Options {
        auth: Auth::Basic,
        ..Options::default()
    });
    Image::simple(Style::Oci, Compression::Gzip, "private").push(&reg, "private", "latest");
    reg
}

fn token_registry(opts: TokenOptions) -> Registry {
    let reg = Registry::start(Options {
        auth: Auth::Token(opts),
        ..Options::default()
    });
    Image::simple(Style::Oci, Compression::Gzip, "private").push(&reg, "private", "latest");
    reg
}

fn login(b: &Barge, host: &str, password: &str) -> Output {
    b.run_with_stdin(
        &["login", "-u", USER, "--password-stdin", host],
        &format!("{password}\n"),
    )
}

#[test]
fn login_to_a_basic_auth_registry_then_pull_and_logout() {
    if !require_root_and(&["docker-registry", "htpasswd"]) {
        return;
    }
    let reg = basic_registry();
    let host = reg.host();
    let private = format!("{host}/private");
    let b = Barge::new();
    std::fs::remove_dir(b.docker_config()).unwrap();

    let o = login(&b, &host, "wrong-password");
    assert!(!o.status.success());
    assert!(err(&o).contains("rejected the login"), "{}", err(&o));
    assert!(!err(&o).contains("wrong-password"));
    assert!(!b.docker_config().join("config.json").exists(), "nothing saved");

    let o = login(&b, &host, PASSWORD);
    assert!(o.status.success(), "{}", err(&o));
    assert_eq!(out(&o), "Login Succeeded\n");
    assert!(
        err(&o).contains("WARNING! Your password will be stored unencrypted in"),
        "{}",
        err(&o)
    );
    let cfg = b.docker_config().join("config.json");
    assert_eq!(std::fs::metadata(&cfg).unwrap().permissions().mode() & 0o777, 0o600);
    assert_eq!(
        std::fs::metadata(b.docker_config()).unwrap().permissions().mode() & 0o777,
        0o700
    );
    assert!(b.docker_config_json()["auths"][&host]["auth"].is_string());

    b.ok(&["pull", "-q", &private]);
    assert_eq!(b.ok(&["login", "--get-login", &host]), format!("{USER}\n"));
    // With stored credentials and no flags, login re-uses them.
    let o = b.run_with_stdin(&["login", &host], "");
    assert!(o.status.success(), "{}", err(&o));
    assert!(err(&o).contains("Authenticating with existing credentials"));

    let o = b.run(&["login", "-u", USER, "-p", PASSWORD, &host]);
    assert!(o.status.success());
    assert!(err(&o).contains("WARNING! Using --password via the CLI is insecure. Use --password-stdin."));

    assert_eq!(
        b.ok(&["logout", &host]),
        format!("Removing login credentials for {host}\n")
    );
    assert_eq!(b.ok(&["logout", &host]), format!("Not logged in to {host}\n"));
    let e = Barge::new().fails(&["pull", &private]);
    assert!(e.contains("barge login"), "{e}");
    let e = b.fails(&["login", "--get-login", &host]);
    assert!(e.contains("not logged in"), "{e}");
}

#[test]
fn login_argument_errors_are_clear() {
    let b = Barge::new();
    let e = b.run_with_stdin(&["login", "--password-stdin", "example.com"], "x\n");
    assert!(
        err(&e).contains("Must provide --username with --password-stdin"),
        "{}",
        err(&e)
    );
    let e = b.run(&["login", "-u", "x", "-p", "y", "--password-stdin", "example.com"]);
    assert!(!e.status.success());
    assert!(err(&e).contains("cannot be used with"), "{}", err(&e));
    // No terminal, nothing stored: docker's message.
    let e = b.run_with_stdin(&["login", "example.com"], "");
    assert!(
        err(&e).contains("Cannot perform an interactive login from a non TTY device"),
        "{}",
        err(&e)
    );
}

#[test]
fn token_login_keeps_an_identity_token_and_refreshes_with_it() {
    if !require_root_and(&["docker-registry", "openssl"]) {
        return;
    }
    let reg = token_registry(TokenOptions::default());
    let host = reg.host();
    let b = Barge::new();
    let o = login(&b, &host, "nope");
    assert!(!o.status.success());
    assert!(err(&o).contains("incorrect username or password"), "{}", err(&o));
    let o = login(&b, &host, PASSWORD);
    assert!(o.status.success(), "{}", err(&o));
    let entry = &b.docker_config_json()["auths"][&host];
    assert!(
        entry["identitytoken"]
            .as_str()
            .is_some_and(|t| t.starts_with("refresh-")),
        "{entry}"
    );
    let token = reg.token.as_ref().unwrap();
    assert!(
        token.log().iter().any(|r| r.offline && r.user.as_deref() == Some(USER)),
        "login asked for a refresh token"
    );

    b.ok(&["pull", "-q", &format!("{host}/private")]);
    let log = token.log();
    assert!(
        log.iter().any(|r| r.method == "POST"
            && r.grant_type.as_deref() == Some("refresh_token")
            && r.scopes == ["repository:private:pull"]
            && r.user.as_deref() == Some(USER)),
        "the pull used the refresh token: {log:?}"
    );
    assert!(
        !log.iter()
            .any(|r| r.method == "GET" && r.scopes.iter().any(|s| s.contains("private"))),
        "{log:?}"
    );
}

#[test]
fn identity_tokens_fall_back_to_get_when_the_realm_has_no_oauth() {
    if !require_root_and(&["docker-registry", "openssl"]) {
        return;
    }
    let reg = token_registry(TokenOptions {
        oauth: false,
        ..TokenOptions::default()
    });
    let host = reg.host();
    let b = Barge::new();
    assert!(login(&b, &host, PASSWORD).status.success());
    b.ok(&["pull", "-q", &format!("{host}/private")]);
    let log = reg.token.as_ref().unwrap().log();
    let post = log.iter().position(|r| r.method == "POST").expect("a POST was tried");
    assert!(
        log[post..]
            .iter()
            .any(|r| r.method == "GET" && r.user.as_deref() == Some(USER) && !r.scopes.is_empty()),
        "then a GET: {log:?}"
    );
}

#[test]
fn tokens_that_expire_mid_pull_are_renewed() {
    if !require_root_and(&["docker-registry", "openssl"]) {
        return;
    }
    // Tokens the registry stops accepting after 3 s while the client believes them good for 300 s.
    let reg = Registry::start(Options {
        auth: Auth::Token(TokenOptions {
            anonymous_pull: true,
            jwt_lifetime: -57,
            ..TokenOptions::default()
        }),
        ..Options::default()
    });
    let layers: Vec<_> = (0..3u8)
        .map(|i| {
            LayerBuilder::new()
                .file(&format!("l{i}"), &vec![i; 4 << 20], 0o644)
                .build(Compression::None)
        })
        .collect();
    Image::new(layers, Style::Oci, Spec::default()).push(&reg, "slow", "latest");
    let proxy = SlowProxy::start(&reg.host(), 2 << 20);
    let b = Barge::new();
    let before = reg.token.as_ref().unwrap().requests();
    let o = b.run(&[
        "pull",
        "--max-concurrent-downloads",
        "1",
        &format!("{}/slow", proxy.host()),
    ]);
    assert!(o.status.success(), "{}", err(&o));
    let fetched = reg.token.as_ref().unwrap().requests() - before;
    assert!(
        fetched >= 2,
        "a new token was fetched after the registry refused the old one ({fetched} requests)"
    );
}

#[test]
fn credential_helpers_keep_the_secret_out_of_the_file() {
    if !require_root_and(&["docker-registry", "htpasswd", "python3"]) {
        return;
    }
    let reg = basic_registry();
    let host = reg.host();
    let b = Barge::new();
    let helper_store = b.dir.path().join("helper-store");
    let path = test_helper_path(&helper_store);
    let cfg = b.docker_config().join("config.json");
    std::fs::write(&cfg, r#"{"credsStore":"testhelper","detachKeys":"ctrl-x"}"#).unwrap();
    let run = |args: &[&str], stdin: &str| {
        let mut c = b.command();
        c.args(args).env("PATH", &path).env("TEST_HELPER_STORE", &helper_store);
        c.stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = c.spawn().unwrap();
        use std::io::Write as _;
        child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
        child.wait_with_output().unwrap()
    };
    let o = run(&["login", "-u", USER, "--password-stdin", &host], PASSWORD);
    assert!(o.status.success(), "{}", err(&o));
    assert!(!err(&o).contains("unencrypted"), "{}", err(&o));
    let doc = b.docker_config_json();
    assert_eq!(
        doc["auths"][&host],
        serde_json::json!({}),
        "an empty entry, as docker writes"
    );
    assert_eq!(doc["detachKeys"], "ctrl-x");
    let file = std::fs::read_to_string(&cfg).unwrap();
    assert!(!file.contains(PASSWORD));
    let stored: Vec<_> = std::fs::read_dir(&helper_store)
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "json"))
        .collect();
    assert_eq!(stored.len(), 1, "the helper holds the secret");

    let o = run(&["pull", "-q", &format!("{host}/private")], "");
    assert!(o.status.success(), "the helper's get is used: {}", err(&o));
    let calls = std::fs::read_to_string(helper_store.join("calls.log")).unwrap();
    assert!(calls.lines().any(|l| l == "get"), "{calls}");

    // Per-registry helpers win over credsStore.
    std::fs::write(
        &cfg,
        format!(r#"{{"credsStore":"nosuch","credHelpers":{{"{host}":"testhelper"}}}}"#),
    )
    .unwrap();
    let o = run(&["pull", "-q", &format!("{host}/private")], "");
    assert!(o.status.success(), "{}", err(&o));
    std::fs::write(
        &cfg,
        format!(r#"{{"credsStore":"testhelper","auths":{{"{host}":{{}}}}}}"#),
    )
    .unwrap();

    let o = run(&["logout", "--all"], "");
    assert!(o.status.success(), "{}", err(&o));
    assert!(
        out(&o).contains(&format!("Removing login credentials for {host}")),
        "{}",
        out(&o)
    );
    assert!(
        std::fs::read_dir(&helper_store)
            .unwrap()
            .all(|e| e.unwrap().path().extension().is_none_or(|x| x != "json")),
        "helper erased"
    );

    // A helper that is not installed is named.
    std::fs::write(&cfg, r#"{"credsStore":"nosuch"}"#).unwrap();
    let o = run(&["login", "-u", USER, "--password-stdin", &host], PASSWORD);
    assert!(!o.status.success());
    assert!(err(&o).contains("docker-credential-nosuch"), "{}", err(&o));
    assert_eq!(
        std::fs::read_to_string(&cfg).unwrap(),
        r#"{"credsStore":"nosuch"}"#,
        "file untouched"
    );
}

#[test]
fn skopeo_and_barge_share_auth_files_both_ways() {
    if !require_root_and(&["docker-registry", "htpasswd", "skopeo"]) {
        return;
    }
    let reg = basic_registry();
    let host = reg.host();
    let b = Barge::new();
    assert!(login(&b, &host, PASSWORD).status.success());
    let cfg = b.docker_config().join("config.json");
    run_ok(
        Command::new("skopeo")
            .args(["inspect", "--tls-verify=false", "--authfile"])
            .arg(&cfg)
            .arg(format!("docker://{host}/private")),
    );

    let b2 = Barge::new();
    let skopeo_file = b2.dir.path().join("skopeo-auth.json");
    run_ok(
        Command::new("skopeo")
            .args(["login", "--tls-verify=false", "-u", USER, "-p", PASSWORD, "--authfile"])
            .arg(&skopeo_file)
            .arg(&host),
    );
    std::fs::copy(&skopeo_file, b2.docker_config().join("config.json")).unwrap();
    b2.ok(&["pull", "-q", &format!("{host}/private")]);

    // containers' auth.json is the fallback when docker's file has nothing.
    let b3 = Barge::new();
    let o = b3
        .command()
        .args(["pull", "-q", &format!("{host}/private")])
        .env("REGISTRY_AUTH_FILE", &skopeo_file)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", err(&o));
}

#[test]
fn config_files_keep_unknown_fields_follow_symlinks_and_refuse_to_overwrite_garbage() {
    if !require_root_and(&["docker-registry", "htpasswd"]) {
        return;
    }
    let reg = basic_registry();
    let host = reg.host();
    let b = Barge::new();
    let real = b.dir.path().join("dotfiles/docker.json");
    std::fs::create_dir_all(real.parent().unwrap()).unwrap();
    std::fs::write(
        &real,
        r#"{"proxies":{"default":{"httpProxy":"http://proxy:3128"}},"auths":{"other.example":{"auth":"eDp5"}}}"#,
    )
    .unwrap();
    let cfg = b.docker_config().join("config.json");
    std::os::unix::fs::symlink(&real, &cfg).unwrap();
    assert!(login(&b, &host, PASSWORD).status.success());
    assert!(
        std::fs::symlink_metadata(&cfg).unwrap().file_type().is_symlink(),
        "still a symlink"
    );
    let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(&real).unwrap()).unwrap();
    assert_eq!(doc["proxies"]["default"]["httpProxy"], "http://proxy:3128");
    assert!(doc["auths"]["other.example"]["auth"].is_string());
    assert!(doc["auths"][&host]["auth"].is_string());

    std::fs::write(&real, "{ this is not json").unwrap();
    let o = login(&b, &host, PASSWORD);
    assert!(!o.status.success());
    assert!(
        err(&o).contains(&real.display().to_string()) || err(&o).contains("config.json"),
        "{}",
        err(&o)
    );
    assert_eq!(std::fs::read_to_string(&real).unwrap(), "{ this is not json");
    let e = b.fails(&["pull", &format!("{host}/private")]);
    assert!(e.contains("not valid JSON"), "{e}");
}

#[test]
fn fifty_concurrent_logins_keep_fifty_entries() {
    if !require_root_and(&["docker-registry", "htpasswd"]) {
        return;
    }
    let reg = Registry::start(Options {
        auth: Auth::Basic,
        all_interfaces: true,
        ..Options::default()
    });
    let b = Barge::new();
    let children: Vec<_> = (1..=50)
        .map(|i| {
            let mut c = b.command();
            c.args([
                "login",
                "-u",
                USER,
                "--password-stdin",
                &format!("127.0.0.{i}:{}", reg.port),
            ]);
            c.stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped());
            let mut child = c.spawn().unwrap();
            use std::io::Write as _;
            child.stdin.take().unwrap().write_all(PASSWORD.as_bytes()).unwrap();
            child
        })
        .collect();
    for c in children {
        let o = c.wait_with_output().unwrap();
        assert!(o.status.success(), "{}", err(&o));
    }
    let auths = b.docker_config_json()["auths"].as_object().unwrap().len();
    assert_eq!(auths, 50);
}

#[test]
fn info_shows_the_store_and_the_docker_hub_login() {
    let b = Barge::new();
    std::fs::write(
        b.docker_config().join("config.json"),
        r#"{"auths":{"https://index.docker.io/v1/":{"auth":"aHViLXVzZXI6cGFzcw=="}}}"#,
    )
    .unwrap();
    let info = b.ok(&["info"]);
    assert!(
        info.contains(&format!(" Barge Root Dir: {}", b.root().display())),
        "{info}"
    );
    assert!(info.contains(" Images: 0"), "{info}");
    assert!(info.contains(" Containers: 0"), "{info}");
    assert!(info.contains(" Username: hub-user"), "{info}");
    assert!(info.contains(" Registry: https://index.docker.io/v1/"), "{info}");
    assert!(!info.contains("pass"), "{info}");
    assert_eq!(b.ok(&["info", "--format", "{{.Username}} {{.Images}}"]), "hub-user 0\n");
    // docker's Server lines about the host, from the host itself.
    let uname = rustix::system::uname();
    assert!(
        info.contains(&format!(" Kernel Version: {}\n", uname.release().to_string_lossy())),
        "{info}"
    );
    assert!(
        info.contains(&format!(" Architecture: {}\n", uname.machine().to_string_lossy())),
        "{info}"
    );
    assert!(
        info.contains(&format!(" Name: {}\n", uname.nodename().to_string_lossy())),
        "{info}"
    );
    let cpus = std::thread::available_parallelism().unwrap().get();
    assert!(info.contains(&format!(" CPUs: {cpus}\n")), "{info}");
    assert!(info.contains(" Total Memory: ") && info.contains("GiB"), "{info}");
    assert!(
        info.contains(" Operating System: ") && info.contains(" Cgroup Driver: cgroupfs"),
        "{info}"
    );
    let v: serde_json::Value = serde_json::from_str(&b.ok(&["info", "--format", "json"])).unwrap();
    assert!(v["MemTotal"].as_u64().unwrap() > 1 << 20, "{v}");
    assert_eq!(v["NCPU"], cpus);
    assert_eq!(b.ok(&["login", "--get-login"]), "hub-user\n");
}

#[test]
fn credentials_never_show_in_output_even_with_debug() {
    if !require_root_and(&["docker-registry", "htpasswd"]) {
        return;
    }
    let reg = basic_registry();
    let host = reg.host();
    let b = Barge::new();
    let secret = "Sup3r-Secret-Value";
    let o = b.run_with_stdin(&["--debug", "login", "-u", USER, "--password-stdin", &host], secret);
    assert!(!o.status.success());
    for text in [out(&o), err(&o)] {
        assert!(!text.contains(secret), "{text}");
    }
    assert!(login(&b, &host, PASSWORD).status.success());
    let o = b.run(&["--debug", "pull", &format!("{host}/missing:tag")]);
    assert!(!o.status.success());
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"));
    for text in [out(&o), err(&o)] {
        assert!(!text.contains(PASSWORD) && !text.contains(&b64), "{text}");
    }
}

#[test]
fn blob_redirects_to_another_host_carry_no_authorization() {
    use base64::Engine as _;
    let layer = LayerBuilder::new()
        .file("x", b"redirected", 0o644)
        .build(Compression::Gzip);
    let img = Image::new(vec![layer.clone()], Style::Oci, Spec::default());
    let cdn = CannedServer::start(vec![(
        &format!("/blobs/{}", layer.digest),
        Response::new(200, "application/octet-stream", layer.blob.clone()),
    )]);
    let auth = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"))
    );
    let registry = CannedServer::start_with(
        vec![
            (
                "/v2/app/manifests/latest",
                Response::new(200, img.media_type, img.manifest.clone())
                    .header("Docker-Content-Digest", &img.manifest_digest),
            ),
            (
                &format!("/v2/app/blobs/{}", img.config_digest),
                Response::new(200, "application/octet-stream", img.config.clone()),
            ),
            (
                &format!("/v2/app/blobs/{}", layer.digest),
                Response::new(307, "text/plain", "")
                    .header("Location", &format!("http://{}/blobs/{}", cdn.host(), layer.digest)),
            ),
        ],
        Some(auth.clone()),
    );
    let b = Barge::new();
    std::fs::write(
        b.docker_config().join("config.json"),
        serde_json::json!({"auths": {registry.host(): {"auth": base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"))}}}).to_string(),
    )
    .unwrap();
    let o = b.run(&["pull", "-q", &format!("{}/app", registry.host())]);
    assert!(o.status.success(), "{}", err(&o));
    let cdn_requests = cdn.requests();
    assert!(!cdn_requests.is_empty(), "the blob came from the other host");
    for r in &cdn_requests {
        assert!(
            !r.headers.contains_key("authorization"),
            "credentials leaked to the CDN: {r:?}"
        );
    }
    assert!(
        registry
            .requests()
            .iter()
            .any(|r| r.headers.get("authorization") == Some(&auth)),
        "the registry got them"
    );
}

/// Runs a shell script inside a private D-Bus session with an unlocked gnome-keyring.
fn in_keyring_session(script: &str) -> Output {
    let wrapped =
        format!("eval \"$(printf test | gnome-keyring-daemon --unlock --components=secrets)\" >/dev/null\n{script}");
    Command::new("dbus-run-session")
        .args(["--", "sh", "-ec", &wrapped])
        .output()
        .unwrap()
}

#[test]
fn the_os_keyring_holds_credentials_for_barge_and_docker() {
    if !require_root_and(&[
        "docker-registry",
        "htpasswd",
        "dbus-run-session",
        "gnome-keyring-daemon",
        "secret-tool",
        "dbus-monitor",
    ]) {
        return;
    }
    let reg = basic_registry();
    let host = reg.host();
    let b = Barge::new();
    let bin = b.dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    std::os::unix::fs::symlink(barge_tests::barge_bin(), bin.join("docker-credential-barge")).unwrap();
    let barge = format!(
        "{} --root {} --config {}",
        barge_tests::barge_bin().display(),
        b.root().display(),
        b.docker_config().display()
    );
    let script = format!(
        r#"
export PATH={bin}:$PATH BARGE_CONFIG={cfg}
# Everything on the session bus while barge talks to the keyring.
dbus-monitor --session > monitor.out 2>&1 &
monitor=$!
i=0
until grep -q NameLost monitor.out; do i=$((i+1)); [ $i -lt 400 ] || exit 9; sleep 0.05; done
printf '%s' '{PASSWORD}' | {barge} login --creds-store barge -u {USER} --password-stdin {host} > login.out 2> login.err
cp {docker}/config.json config-after-login.json
{barge} pull -q {host}/private > pull.out 2> pull.err
{barge} login --get-login {host} > getlogin.out
echo {host} | docker-credential-barge get > helper-get.out
docker-credential-barge list > helper-list.out
printf '%s' '{{"ServerURL":"docker.example","Username":"d","Secret":"from-docker"}}' | docker-credential-barge store
echo docker.example | docker-credential-barge get > helper-get2.out
echo nowhere.example | docker-credential-barge get > helper-missing.out || echo "status=$?" >> helper-missing.out
kill $monitor
wait $monitor || true
secret-tool search --all application barge > search.out 2>&1 || true
{barge} logout --all > logout.out
secret-tool search --all application barge > search-after.out 2>&1 || true
"#,
        bin = bin.display(),
        cfg = b.dir.path().join("barge-config").display(),
        docker = b.docker_config().display(),
    );
    let work = b.dir.path().join("work");
    std::fs::create_dir(&work).unwrap();
    std::fs::write(work.join("script.sh"), &script).unwrap();
    let o = in_keyring_session(&format!("cd {}\n. ./script.sh", work.display()));
    let read = |f: &str| std::fs::read_to_string(work.join(f)).unwrap_or_default();
    assert!(
        o.status.success(),
        "{}\n{}\nlogin: {}",
        out(&o),
        err(&o),
        read("login.err")
    );
    assert_eq!(read("login.out"), "Login Succeeded\n", "{}", read("login.err"));
    assert!(!read("login.err").contains("unencrypted"));
    let search = read("search.out");
    assert!(
        search.contains(&format!("attribute.server = {host}")) && search.contains(&format!("secret = {PASSWORD}")),
        "{search}"
    );
    let doc: serde_json::Value = serde_json::from_str(&read("config-after-login.json")).unwrap();
    assert_eq!(doc["credsStore"], "barge");
    assert_eq!(doc["auths"][&host], serde_json::json!({}));
    assert_eq!(
        read("pull.out"),
        format!("{host}/private:latest\n"),
        "{}",
        read("pull.err")
    );
    assert_eq!(read("getlogin.out"), format!("{USER}\n"));
    let got: serde_json::Value = serde_json::from_str(&read("helper-get.out")).unwrap();
    assert_eq!(got["Username"], USER);
    assert_eq!(got["Secret"], PASSWORD);
    assert!(
        read("helper-list.out").contains(&format!("\"{host}\":\"{USER}\"")),
        "{}",
        read("helper-list.out")
    );
    assert!(read("helper-get2.out").contains("from-docker"));
    assert!(
        read("helper-missing.out").contains("credentials not found in native keychain")
            && read("helper-missing.out").contains("status=1")
    );
    assert!(
        read("logout.out").contains(&format!("Removing login credentials for {host}")),
        "{}",
        read("logout.out")
    );
    assert!(
        !read("search-after.out").contains("secret ="),
        "{}",
        read("search-after.out")
    );
    // The secrets crossed the bus in an encrypted session: dbus-monitor
    // prints a printable byte array as a string, so a plain one would show.
    let monitor = read("monitor.out");
    assert!(monitor.contains("member=OpenSession"), "{monitor}");
    assert!(
        monitor.contains("string \"dh-ietf1024-sha256-aes128-cbc-pkcs7\""),
        "{monitor}"
    );
    assert!(!monitor.contains("string \"plain\""), "{monitor}");
    for secret in [PASSWORD, "from-docker"] {
        assert!(!monitor.contains(secret), "{secret} crossed the bus in clear");
    }
}

#[test]
fn without_a_keyring_service_the_error_says_what_to_install() {
    if !require_root_and(&["docker-registry", "htpasswd"]) {
        return;
    }
    let reg = basic_registry();
    let b = Barge::new();
    std::fs::write(b.docker_config().join("config.json"), r#"{"auths":{}}"#).unwrap();
    let mut c = b.command();
    c.args([
        "login",
        "--creds-store",
        "barge",
        "-u",
        USER,
        "--password-stdin",
        &reg.host(),
    ]);
    c.env(
        "DBUS_SESSION_BUS_ADDRESS",
        format!("unix:path={}/no-bus", b.dir.path().display()),
    );
    c.stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = c.spawn().unwrap();
    use std::io::Write as _;
    child.stdin.take().unwrap().write_all(PASSWORD.as_bytes()).unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(!o.status.success());
    assert!(
        err(&o).contains("no OS keyring is available") && err(&o).contains("gnome-keyring"),
        "{}",
        err(&o)
    );
    assert_eq!(
        std::fs::read_to_string(b.docker_config().join("config.json")).unwrap(),
        r#"{"auths":{}}"#,
        "credsStore not set"
    );
}

#[test]
fn login_prompts_on_a_terminal_without_echoing_the_password() {
    if !require_root_and(&["docker-registry", "htpasswd", "script"]) {
        return;
    }
    let reg = basic_registry();
    let b = Barge::new();
    let shell = format!(
        "{} --root {} --config {} login {}",
        barge_tests::barge_bin().display(),
        b.root().display(),
        b.docker_config().display(),
        reg.host()
    );
    let mut child = Command::new("script")
        .args(["-qec", &shell, "/dev/null"])
        .env("BARGE_CONFIG", b.dir.path().join("barge-config"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // What the terminal shows, read as it comes.
    let screen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut stdout = child.stdout.take().unwrap();
    let reader = {
        let screen = screen.clone();
        std::thread::spawn(move || {
            use std::io::Read as _;
            let mut buf = [0u8; 1024];
            while let Ok(n @ 1..) = stdout.read(&mut buf) {
                screen.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        })
    };
    let shown = |what: &str| String::from_utf8_lossy(&screen.lock().unwrap()).contains(what);
    let mut stdin = child.stdin.take().unwrap();
    use std::io::Write as _;
    // Typed at each prompt once it shows, as a user would.
    barge_tests::wait_until("the Username prompt", || shown("Username: "));
    stdin.write_all(format!("{USER}\n").as_bytes()).unwrap();
    barge_tests::wait_until("the Password prompt", || shown("Password: "));
    stdin.write_all(format!("{PASSWORD}\n").as_bytes()).unwrap();
    drop(stdin);
    assert!(child.wait().unwrap().success());
    reader.join().unwrap();
    let screen = String::from_utf8_lossy(&screen.lock().unwrap()).into_owned();
    assert!(
        screen.contains("Username: ") && screen.contains("Password: "),
        "{screen}"
    );
    assert!(screen.contains("Login Succeeded"), "{screen}");
    assert!(!screen.contains(PASSWORD), "the password was echoed: {screen}");
    assert!(b.docker_config_json()["auths"][&reg.host()]["auth"].is_string());
}

#[test]
fn a_plain_http_realm_for_a_remote_registry_gets_no_credentials() {
    if !require_root_and(&["docker-registry"]) {
        return;
    }
    let Some(ip) = barge_tests::external_ip() else {
        assert!(barge_tests::require("a non-loopback IPv4 address", false));
        return;
    };
    // An HTTPS registry on a non-loopback address whose token realm is plain HTTP.
    let reg = Registry::start(Options {
        auth: Auth::Token(TokenOptions {
            realm_ip: Some(ip.parse().unwrap()),
            ..TokenOptions::default()
        }),
        tls: true,
        all_interfaces: true,
        ..Options::default()
    });
    Image::simple(Style::Oci, Compression::Gzip, "private").push(&reg, "private", "latest");
    let host = format!("{ip}:{}", reg.port);
    let b = Barge::new();
    let cred = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, format!("{USER}:{PASSWORD}"));
    std::fs::write(
        b.docker_config().join("config.json"),
        format!(r#"{{"auths":{{"{host}":{{"auth":"{cred}"}}}}}}"#),
    )
    .unwrap();
    let token = reg.token.as_ref().unwrap();
    let before = token.requests();
    // Skipping certificate checks for the registry says nothing about its realm.
    let e = b.fails(&["pull", "--insecure-registry", &host, &format!("{host}/private")]);
    assert!(
        e.contains(&format!("refusing to send credentials for {host} to http://{ip}:"))
            && e.contains("over plain HTTP"),
        "{e}"
    );
    let o = b.run_with_stdin(
        &[
            "login",
            "--insecure-registry",
            &host,
            "-u",
            USER,
            "--password-stdin",
            &host,
        ],
        &format!("{PASSWORD}\n"),
    );
    assert!(!o.status.success());
    assert!(err(&o).contains("over plain HTTP"), "{}", err(&o));
    assert_eq!(token.requests(), before, "the realm was never called");
    assert!(b.run(&["images", "-q"]).stdout.is_empty());
}
