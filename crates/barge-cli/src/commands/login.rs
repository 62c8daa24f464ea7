//! `barge login`, `logout`, `info`, and the `docker-credential-barge` helper.

use super::Env;
use crate::args::{InfoArgs, LoginArgs, LogoutArgs};
use crate::failure::{Context, Failure};
use barge_auth::{config_key, Credential, CredentialLookup, Stored};
use barge_oci::reference::{DOCKER_HUB, DOCKER_HUB_API_HOST};
use std::io::{BufRead, IsTerminal, Read, Write};

/// The registry a login names, as references write it (`docker.io`,
/// `localhost:5000`), from what users type (`https://index.docker.io/v1/`,
/// `http://localhost:5000/v2/`, `registry.gitlab.com`).
fn registry_of(server: Option<&str>) -> String {
    let s = server.unwrap_or(DOCKER_HUB);
    let s = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"))
        .unwrap_or(s);
    let host = s.split('/').next().unwrap_or(s).to_ascii_lowercase();
    match host.as_str() {
        "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" | "" => DOCKER_HUB.to_string(),
        _ => host,
    }
}

fn api_host(registry: &str) -> &str {
    if registry == DOCKER_HUB {
        DOCKER_HUB_API_HOST
    } else {
        registry
    }
}

/// Reads a line from the terminal, without echo for secrets.
pub(super) fn prompt(label: &str, echo: bool) -> std::io::Result<String> {
    let mut tty = std::fs::OpenOptions::new().read(true).write(true).open("/dev/tty")?;
    write!(tty, "{label}")?;
    tty.flush()?;
    let saved = if echo {
        None
    } else {
        let saved = rustix::termios::tcgetattr(&tty)?;
        let mut quiet = saved.clone();
        quiet.local_modes.remove(rustix::termios::LocalModes::ECHO);
        rustix::termios::tcsetattr(&tty, rustix::termios::OptionalActions::Now, &quiet)?;
        Some(saved)
    };
    let mut line = String::new();
    let result = std::io::BufReader::new(&tty).read_line(&mut line);
    if let Some(saved) = saved {
        let _ = rustix::termios::tcsetattr(&tty, rustix::termios::OptionalActions::Now, &saved);
        let _ = writeln!(tty);
    }
    result?;
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}

pub(super) fn interactive() -> bool {
    std::io::stdin().is_terminal() && std::fs::File::open("/dev/tty").is_ok()
}

pub fn login(env: &Env, a: &LoginArgs) -> Result<i32, Failure> {
    let registry = registry_of(a.server.as_deref());
    let key = config_key(&registry);
    let auth = env.auth();
    if a.get_login {
        return match auth
            .username(&registry)
            .context(|| format!("reading the login for {key}"))?
        {
            Some(user) => {
                println!("{user}");
                Ok(0)
            }
            None => Err(Failure::msg(format!("not logged in to {key}"))),
        };
    }
    if a.password_stdin && a.username.is_none() {
        return Err(Failure::msg("Must provide --username with --password-stdin"));
    }
    if a.password.is_some() {
        eprintln!("WARNING! Using --password via the CLI is insecure. Use --password-stdin.");
    }
    let client = env.client()?;
    let host = api_host(&registry);

    // No user or password given: try what is stored, as docker does.
    if a.username.is_none() && a.password.is_none() && !a.password_stdin {
        if let Some(stored) = auth
            .lookup(&registry)
            .context(|| format!("reading the login for {key}"))?
        {
            eprintln!("Authenticating with existing credentials...");
            match client.login(host, &stored) {
                Ok(_) => {
                    println!("Login Succeeded");
                    return Ok(0);
                }
                Err(e) if !interactive() => return Err(Failure::new(format!("login to {key}"), e)),
                Err(e) => eprintln!(
                    "Login did not succeed, error: {}",
                    barge_registry::sanitize(&e.to_string())
                ),
            }
        }
    }

    let username = match &a.username {
        Some(u) => u.clone(),
        None if interactive() => prompt("Username: ", true).context(|| "reading the user name".to_string())?,
        None => {
            return Err(Failure::msg(
                "Cannot perform an interactive login from a non TTY device",
            ))
        }
    };
    let username = username.trim().to_string();
    if username.is_empty() {
        return Err(Failure::msg("Username cannot be empty"));
    }
    let password = if let Some(p) = &a.password {
        p.clone()
    } else if a.password_stdin {
        let mut s = String::new();
        std::io::stdin()
            .take(1 << 20)
            .read_to_string(&mut s)
            .context(|| "reading the password from stdin".to_string())?;
        s.trim_end_matches(['\n', '\r']).to_string()
    } else if interactive() {
        prompt("Password: ", false).context(|| "reading the password".to_string())?
    } else {
        return Err(Failure::msg(
            "Cannot perform an interactive login from a non TTY device",
        ));
    };
    if password.is_empty() {
        return Err(Failure::msg("Password cannot be empty"));
    }

    let cred = Credential::Basic {
        username: username.clone(),
        password,
    };
    let identity = client.login(host, &cred).context(|| format!("login to {key}"))?;
    let keep = match identity {
        Some(token) => Credential::IdentityToken { username, token },
        None => cred,
    };
    match auth
        .save(&registry, &keep, a.creds_store.as_deref())
        .context(|| format!("saving the login for {key}"))?
    {
        Stored::Plaintext(path) => eprintln!(
            "WARNING! Your password will be stored unencrypted in {}.\n\
             Configure a credential helper to remove this warning, for example with\n\
             `barge login --creds-store barge` (the OS keyring). See\n\
             https://docs.docker.com/engine/reference/commandline/login/#credentials-store\n",
            path.display()
        ),
        Stored::Helper(_) => {}
    }
    println!("Login Succeeded");
    Ok(0)
}

pub fn logout(env: &Env, a: &LogoutArgs) -> Result<i32, Failure> {
    let auth = env.auth();
    if a.all {
        let removed = auth
            .remove_all()
            .context(|| format!("removing the logins in {}", auth.path().display()))?;
        if removed.is_empty() {
            println!("Not logged in to any registry");
        }
        for r in removed {
            println!("Removing login credentials for {r}");
        }
        return Ok(0);
    }
    let registry = registry_of(a.server.as_deref());
    let key = config_key(&registry);
    if auth
        .remove(&registry)
        .context(|| format!("removing the login for {key}"))?
    {
        println!("Removing login credentials for {key}");
    } else {
        println!("Not logged in to {key}");
    }
    Ok(0)
}

pub fn info(env: &Env, a: &InfoArgs) -> Result<i32, Failure> {
    let store = env.store()?;
    let entries = store.entries().context(|| "listing images".to_string())?;
    let images: std::collections::BTreeSet<_> = entries.iter().map(|e| &e.meta.image_id).collect();
    let counts = super::containers::counts(env)?;
    let auth = env.auth();
    let username = auth.username(DOCKER_HUB).unwrap_or(None);
    // docker's names: `name=rootless` in a rootless engine's SecurityOptions.
    let mut security = vec!["name=seccomp,profile=builtin".to_string()];
    match barge_runtime::userns::inside() {
        Some(barge_runtime::userns::Mapping::Subordinate) => security.push("name=rootless,ids=subordinate".into()),
        Some(barge_runtime::userns::Mapping::Single) => security.push("name=rootless,ids=single".into()),
        None => {}
    }
    let mut insecure = vec!["127.0.0.0/8".to_string(), "::1/128".to_string()];
    insecure.extend(env.insecure_registries()?);
    let host = barge_runtime::host::facts();
    let v = serde_json::json!({
        "ClientInfo": {"Version": env!("CARGO_PKG_VERSION"), "Config": auth.path().display().to_string()},
        "Images": images.len(),
        "Containers": counts.total,
        "ContainersRunning": counts.running,
        "ContainersPaused": 0,
        "ContainersStopped": counts.total - counts.running,
        "BargeRootDir": store.root().display().to_string(),
        "Driver": "overlay",
        "LoggingDriver": "json-file",
        "CgroupDriver": if host.cgroup_version.is_some() { "cgroupfs" } else { "none" },
        "CgroupVersion": host.cgroup_version.map(|v| v.to_string()).unwrap_or_default(),
        "IndexServerAddress": barge_auth::DOCKER_HUB_KEY,
        "Username": username.clone().unwrap_or_default(),
        "InsecureRegistries": insecure,
        "SecurityOptions": security,
        "KernelVersion": host.kernel,
        "OperatingSystem": host.operating_system,
        "OSType": std::env::consts::OS,
        "Architecture": host.machine,
        "NCPU": host.cpus,
        "MemTotal": host.memory,
        "Name": host.name,
    });
    if let Some(f) = a.format.as_deref() {
        if f == "json" {
            println!("{v}");
        } else {
            let t = crate::format::Template::parse(f).context(|| "--format".to_string())?;
            println!("{}", t.render(&v).context(|| "--format".to_string())?);
        }
        return Ok(0);
    }
    println!("Client:");
    println!(" Version:    {}", env!("CARGO_PKG_VERSION"));
    println!(" Context:    default (daemonless)");
    println!(" Config:     {}", auth.path().display());
    println!();
    // docker's Server section: barge has no server, but these are the
    // lines scripts read, about the store and the host containers run on.
    println!("Server:");
    println!(" Containers: {}", counts.total);
    println!("  Running: {}", counts.running);
    println!("  Paused: 0");
    println!("  Stopped: {}", counts.total - counts.running);
    println!(" Images: {}", images.len());
    println!(" Storage Driver: overlay (per-layer snapshots)");
    println!(" Logging Driver: json-file");
    println!(" Cgroup Driver: {}", v["CgroupDriver"].as_str().unwrap_or_default());
    if let Some(version) = host.cgroup_version {
        println!(" Cgroup Version: {version}");
    }
    println!(" Security Options:");
    for o in &security {
        let mut parts = o.split(',');
        println!("  {}", parts.next().unwrap_or_default().trim_start_matches("name="));
        for p in parts {
            let (k, val) = p.split_once('=').unwrap_or((p, ""));
            let mut k = k.chars();
            let first = k
                .next()
                .map(|c| c.to_uppercase().collect::<String>())
                .unwrap_or_default();
            println!("   {first}{}: {val}", k.as_str());
        }
    }
    println!(" Kernel Version: {}", v["KernelVersion"].as_str().unwrap_or_default());
    println!(
        " Operating System: {}",
        v["OperatingSystem"].as_str().unwrap_or_default()
    );
    println!(" OSType: {}", std::env::consts::OS);
    println!(" Architecture: {}", v["Architecture"].as_str().unwrap_or_default());
    println!(" CPUs: {}", host.cpus);
    println!(" Total Memory: {}", crate::format::binary_size(host.memory));
    println!(" Name: {}", v["Name"].as_str().unwrap_or_default());
    println!(" Barge Root Dir: {}", store.root().display());
    if let Some(u) = username {
        println!(" Username: {u}");
    }
    println!(" Registry: {}", barge_auth::DOCKER_HUB_KEY);
    println!(" Insecure Registries:");
    for r in v["InsecureRegistries"].as_array().into_iter().flatten() {
        println!("  {}", r.as_str().unwrap_or_default());
    }
    Ok(0)
}

/// `version`: docker's Client section (barge has no server), or the same
/// as JSON or through a template.
pub fn version(a: &InfoArgs) -> Result<i32, Failure> {
    let host = barge_oci::Platform::host();
    let v = serde_json::json!({
        "Client": {
            "Platform": {"Name": "barge"},
            "Version": env!("CARGO_PKG_VERSION"),
            "ApiVersion": "1.41",
            "Os": std::env::consts::OS,
            "Arch": host.architecture,
            "Context": "default",
        }
    });
    match a.format.as_deref() {
        Some("json") => println!("{v}"),
        Some(f) => {
            let t = crate::format::Template::parse(f).context(|| "--format".to_string())?;
            println!("{}", t.render(&v).context(|| "--format".to_string())?);
        }
        None => {
            println!("Client: barge");
            println!(" Version:           {}", env!("CARGO_PKG_VERSION"));
            println!(" API version:       1.41");
            println!(" OS/Arch:           {}/{}", std::env::consts::OS, host.architecture);
            println!(" Context:           default (daemonless)");
        }
    }
    Ok(0)
}

/// The docker credential helper protocol over the OS keyring. Errors go to
/// stdout with exit status 1, as the protocol says.
pub fn credential_helper(operation: &str) -> i32 {
    if operation == "version" {
        println!("docker-credential-barge (barge) {}", env!("CARGO_PKG_VERSION"));
        return 0;
    }
    let mut input = String::new();
    if operation != "list" {
        if let Err(e) = std::io::stdin().take(1 << 20).read_to_string(&mut input) {
            println!("reading stdin: {e}");
            return 1;
        }
    }
    match barge_auth::keyring::serve(operation, &input) {
        Ok(out) => {
            if !out.is_empty() {
                println!("{out}");
            }
            0
        }
        Err(e) => {
            println!("{e}");
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::registry_of;

    #[test]
    fn login_servers_normalise() {
        assert_eq!(registry_of(None), "docker.io");
        assert_eq!(registry_of(Some("https://index.docker.io/v1/")), "docker.io");
        assert_eq!(registry_of(Some("registry-1.docker.io")), "docker.io");
        assert_eq!(registry_of(Some("http://Localhost:5000/v2/")), "localhost:5000");
        assert_eq!(registry_of(Some("registry.gitlab.com")), "registry.gitlab.com");
    }
}
