//! Bridge networks, user networks, published ports and their teardown,
//! using only addresses on bridges and in network namespaces the tests make.

use barge_tests::image::busybox_store;
use barge_tests::registry::Registry;
use barge_tests::wait_until;
use barge_tests::Barge;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::process::Command;
use std::time::Duration;

/// A store with busybox (with a web root, exposing 8080) pulled.
fn setup() -> Option<(Registry, Barge, String)> {
    busybox_store(&["ip", "iptables"], &["--config.exposedports=8080/tcp"], |root| {
        std::fs::create_dir_all(root.join("www")).unwrap();
        std::fs::write(root.join("www/index.html"), "served from the container\n").unwrap();
    })
}

fn sh(b: &Barge, flags: &[&str], image: &str, script: &str) -> String {
    b.sh(image, flags, script)
}

/// A shell loop's head for retrying until a just-started server listens.
const RETRY: &str = "for i in $(seq 100); do";

/// A detached busybox httpd serving /www on 8080; returns its ID.
fn web(b: &Barge, flags: &[&str], image: &str) -> String {
    let mut args = vec!["run", "-d"];
    args.extend_from_slice(flags);
    args.extend_from_slice(&[image, "httpd", "-f", "-p", "8080", "-h", "/www"]);
    b.ok(&args).trim().to_string()
}

fn links() -> Vec<String> {
    std::fs::read_dir("/sys/class/net")
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

fn veth_of(b: &Barge, name: &str) -> String {
    let id = b.ok(&["inspect", "--format", "{{.Id}}", name]);
    format!("veth{}", &id.trim()[..10])
}

fn http_get(port: u16) -> std::io::Result<String> {
    let mut s = TcpStream::connect_timeout(&(Ipv4Addr::LOCALHOST, port).into(), Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.write_all(b"GET / HTTP/1.0\r\n\r\n")?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out)
}

#[test]
fn the_default_bridge_gives_eth0_a_route_and_hosts() {
    let Some((_reg, b, image)) = setup() else { return };
    let out = sh(
        &b,
        &["--hostname", "web1"],
        &image,
        "ip -o -4 addr show; ip route; cat /etc/hosts; hostname -i",
    );
    assert!(out.contains("1: lo    inet 127.0.0.1/8"), "{out}");
    let eth0 = out
        .lines()
        .find(|l| l.contains("eth0") && l.contains("inet "))
        .unwrap_or_else(|| panic!("eth0 with an address: {out}"));
    let ip = eth0
        .split_whitespace()
        .nth(3)
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_string();
    assert!(ip.starts_with("10.222."), "an address from barge0's subnet: {out}");
    assert!(out.contains("default via 10.222.0.1 dev eth0"), "{out}");
    assert!(
        out.contains(&format!("{ip}\tweb1")),
        "/etc/hosts names the container: {out}"
    );
    assert!(links().contains(&"barge0".to_string()));
    // Only lo and eth0, as in docker.
    let names = sh(&b, &[], &image, "ls /sys/class/net | tr '\\n' ' '");
    assert_eq!(names.trim(), "eth0 lo");
    // The container reaches the host on the gateway, and another container directly.
    let srv = web(&b, &[], &image);
    let srv_ip = b
        .ok(&["inspect", "--format", "{{.NetworkSettings.IPAddress}}", &srv])
        .trim()
        .to_string();
    assert!(srv_ip.starts_with("10.222."), "{srv_ip}");
    let got = sh(
        &b,
        &[],
        &image,
        &format!("{RETRY} wget -qO- http://{srv_ip}:8080/ && break; sleep 0.1; done"),
    );
    assert_eq!(got, "served from the container\n");
    b.ok(&["rm", "-f", &srv]);
}

#[test]
fn containers_on_a_user_network_reach_each_other_by_name() {
    let Some((_reg, b, image)) = setup() else { return };
    let net = format!("t{}", std::process::id());
    let subnet = format!("10.224.{}.0/24", std::process::id() % 250);
    let id = b
        .ok(&["network", "create", "--subnet", &subnet, &net])
        .trim()
        .to_string();
    assert_eq!(id.len(), 64);
    let ls = b.ok(&["network", "ls"]);
    assert!(ls.starts_with("NETWORK ID     NAME"), "{ls}");
    for n in ["bridge", "host", "none", &net] {
        assert!(ls.lines().any(|l| l.split_whitespace().nth(1) == Some(n)), "{n}: {ls}");
    }
    let names = |filters: &[&str]| {
        let mut args = vec!["network", "ls", "--format", "{{.Name}}"];
        for f in filters {
            args.extend(["--filter", f]);
        }
        b.ok(&args).lines().map(str::to_string).collect::<Vec<_>>()
    };
    assert_eq!(names(&["type=custom"]), std::slice::from_ref(&net));
    assert_eq!(names(&["type=builtin"]), ["bridge", "host", "none"]);
    assert_eq!(names(&["driver=null"]), ["none"]);
    assert_eq!(names(&["driver=bridge", "name=t"]), std::slice::from_ref(&net));
    assert_eq!(names(&[&format!("id={}", &id[..12])]), std::slice::from_ref(&net));
    assert!(names(&["label=team"]).is_empty(), "barge's networks carry no labels");
    let e = b.fails(&["network", "ls", "--filter", "colour=red"]);
    assert!(e.contains("invalid filter 'colour'"), "{e}");
    web(&b, &["--name", "alpha", "--network", &net], &image);
    b.ok(&["run", "-d", "--name", "beta", "--network", &net, &image, "sleep", "300"]);
    let alpha_ip = b
        .ok(&["inspect", "--format", "{{.NetworkSettings.IPAddress}}", "alpha"])
        .trim()
        .to_string();
    assert!(
        alpha_ip.starts_with(&subnet[..subnet.len() - 4]),
        "{alpha_ip} in {subnet}"
    );
    // The idiom docker's documentation gives, through Go's text/template.
    let idiom = "{{range $name, $n := .NetworkSettings.Networks}}{{$name}} {{$n.IPAddress}}{{end}}";
    assert_eq!(
        b.ok(&["inspect", "-f", idiom, "alpha"]).trim(),
        format!("{net} {alpha_ip}")
    );
    let idiom = "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}";
    assert_eq!(b.ok(&["inspect", "-f", idiom, "alpha"]).trim(), alpha_ip);
    let by_name = b.ok(&[
        "exec",
        "beta",
        "sh",
        "-c",
        &format!("{RETRY} wget -qO- http://alpha:8080/ && break; sleep 0.1; done"),
    ]);
    assert_eq!(by_name, "served from the container\n");
    let by_addr = b.ok(&["exec", "beta", "wget", "-qO-", &format!("http://{alpha_ip}:8080/")]);
    assert_eq!(by_addr, "served from the container\n");
    let ping = b.ok(&["exec", "beta", "ping", "-c", "1", "-W", "5", "alpha"]);
    assert!(ping.contains("1 packets received"), "{ping}");
    // A container joining later is known to those already there.
    b.ok(&[
        "run",
        "-d",
        "--name",
        "gamma",
        "--network",
        &net,
        &image,
        "sleep",
        "300",
    ]);
    let hosts = b.ok(&["exec", "alpha", "cat", "/etc/hosts"]);
    assert!(hosts.contains("\tgamma ") && hosts.contains("\tbeta "), "{hosts}");

    let inspect: serde_json::Value = serde_json::from_str(&b.ok(&["network", "inspect", &net])).unwrap();
    assert_eq!(inspect[0]["IPAM"]["Config"][0]["Subnet"], subnet.as_str());
    assert_eq!(inspect[0]["Containers"].as_object().unwrap().len(), 3);
    let busy = b.run(&["network", "rm", &net]);
    assert_eq!(busy.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&busy.stderr).contains("has active endpoints"));
    // The default bridge does not resolve names, as in docker.
    let e = b.run(&["run", "--rm", &image, "ping", "-c", "1", "-W", "1", "alpha"]);
    assert!(!e.status.success());

    let bridge = format!("br-{}", &id[..12]);
    assert!(links().contains(&bridge));
    b.ok(&["rm", "-f", "alpha", "beta", "gamma"]);
    b.ok(&["network", "rm", &net]);
    assert!(!links().contains(&bridge), "the bridge goes with the network");
    let nat = Command::new("iptables").args(["-t", "nat", "-S"]).output().unwrap();
    assert!(
        !String::from_utf8_lossy(&nat.stdout).contains(&subnet),
        "its NAT rule too"
    );
    let e = b.run(&["run", "--rm", "--network", "nosuch", &image, "true"]);
    assert_eq!(e.status.code(), Some(125));
    assert!(String::from_utf8_lossy(&e.stderr).contains("network nosuch not found"));
}

#[test]
fn published_ports_reach_the_container_from_the_host_loopback() {
    let Some((_reg, b, image)) = setup() else { return };
    let port = barge_tests::free_port();
    web(&b, &["--name", "web", "-p", &format!("127.0.0.1:{port}:8080")], &image);
    // The port is bound before httpd listens inside: wait for it, as with docker.
    wait_until("the server", || {
        http_get(port).is_ok_and(|p| p.ends_with("served from the container\n"))
    });
    let ps = b.ok(&["ps", "--format", "{{.Ports}}"]);
    assert_eq!(ps.trim(), format!("127.0.0.1:{port}->8080/tcp"));
    assert_eq!(b.ok(&["port", "web", "8080"]).trim(), format!("127.0.0.1:{port}"));
    // Taken: a second container cannot have it.
    let taken = b.run(&[
        "run",
        "-d",
        "-p",
        &format!("127.0.0.1:{port}:8080"),
        &image,
        "sleep",
        "30",
    ]);
    assert_eq!(taken.status.code(), Some(125));
    assert!(String::from_utf8_lossy(&taken.stderr).contains("port is already allocated"));

    // -P: the image's exposed port on a free one.
    web(&b, &["--name", "any", "-P"], &image);
    let mapped = b.ok(&["port", "any"]);
    let host_port: u16 = mapped.trim().rsplit(':').next().unwrap().parse().unwrap();
    assert!(mapped.starts_with("8080/tcp -> 0.0.0.0:"), "{mapped}");
    wait_until("the -P server", || {
        http_get(host_port).is_ok_and(|p| p.ends_with("served from the container\n"))
    });

    // Stopping closes the port; the veth goes too.
    let veth = veth_of(&b, "web");
    assert!(links().contains(&veth), "{veth} in {:?}", links());
    b.ok(&["stop", "-t", "1", "web"]);
    assert!(http_get(port).is_err(), "nothing listens after stop");
    wait_until("the veth to go with the namespace", || !links().contains(&veth));
    assert_eq!(
        b.ok(&["ps", "-a", "--filter", "name=web", "--format", "{{.Ports}}"])
            .trim(),
        ""
    );
    // Start again: the port is served again.
    b.ok(&["start", "web"]);
    wait_until("the port again", || http_get(port).is_ok());
    b.ok(&["rm", "-f", "web", "any"]);
    let e = b.run(&["run", "--rm", "-p", "80:80:80", &image, "true"]);
    assert_eq!(e.status.code(), Some(125));
    assert!(String::from_utf8_lossy(&e.stderr).contains("invalid port specification"));
}

/// Moves the calling thread into the network namespace at `path`.
fn enter_netns(path: &std::path::Path) -> std::io::Result<()> {
    let f = std::fs::File::open(path)?;
    rustix::thread::move_into_link_name_space(
        std::os::fd::AsFd::as_fd(&f),
        Some(rustix::thread::LinkNameSpaceType::Network),
    )?;
    Ok(())
}

/// A network namespace standing for another host: 198.18.N.2 behind a veth
/// whose host end is 198.18.N.1.
struct OtherHost {
    ns: String,
    host_end: String,
    addr: String,
    /// The host's end of the veth, which masquerading puts as the source.
    host_addr: String,
}

impl OtherHost {
    fn new() -> OtherHost {
        // Two per test process (tests run in parallel), each its own.
        static MADE: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let k = MADE.fetch_add(1, std::sync::atomic::Ordering::SeqCst) % 2;
        let n = std::process::id() % 125 * 2 + k;
        let ns = format!("barge-test-{}-{k}", std::process::id());
        let host_end = format!("bth{n}");
        let run = |args: &[&str]| {
            let o = Command::new("ip").args(args).output().unwrap();
            assert!(
                o.status.success(),
                "ip {args:?}: {}",
                String::from_utf8_lossy(&o.stderr)
            );
        };
        run(&["netns", "add", &ns]);
        run(&[
            "link", "add", &host_end, "type", "veth", "peer", "name", "eth9", "netns", &ns,
        ]);
        run(&["addr", "add", &format!("198.18.{n}.1/24"), "dev", &host_end]);
        run(&["link", "set", &host_end, "up"]);
        run(&["-n", &ns, "addr", "add", &format!("198.18.{n}.2/24"), "dev", "eth9"]);
        run(&["-n", &ns, "link", "set", "eth9", "up"]);
        run(&["-n", &ns, "link", "set", "lo", "up"]);
        OtherHost {
            ns,
            host_end,
            addr: format!("198.18.{n}.2"),
            host_addr: format!("198.18.{n}.1"),
        }
    }

    /// Accepts one connection inside the namespace; returns the peer address.
    fn accept_one(&self) -> std::thread::JoinHandle<String> {
        let path = format!("/run/netns/{}", self.ns);
        let addr = self.addr.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        let h = std::thread::spawn(move || {
            enter_netns(path.as_ref()).unwrap();
            let l = TcpListener::bind((addr.as_str(), 9000)).unwrap();
            tx.send(()).unwrap();
            let (mut s, peer) = l.accept().unwrap();
            let _ = s.write_all(format!("you are {}\n", peer.ip()).as_bytes());
            peer.ip().to_string()
        });
        rx.recv_timeout(Duration::from_secs(10)).unwrap();
        h
    }
}

impl OtherHost {
    /// Routes `subnet` through the host, as a LAN host routing to barge's subnet would.
    fn route(&self, subnet: &str) {
        let o = Command::new("ip")
            .args(["-n", &self.ns, "route", "add", subnet, "via", &self.host_addr])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }

    /// `GET /` of `addr:port`, connecting from inside the namespace.
    fn http_get(&self, addr: &str, port: u16) -> std::io::Result<String> {
        let path = format!("/run/netns/{}", self.ns);
        let to: std::net::SocketAddr = (addr.parse::<Ipv4Addr>().unwrap(), port).into();
        std::thread::spawn(move || {
            enter_netns(path.as_ref())?;
            let mut s = TcpStream::connect_timeout(&to, Duration::from_secs(3))?;
            s.set_read_timeout(Some(Duration::from_secs(5)))?;
            s.write_all(b"GET / HTTP/1.0\r\n\r\n")?;
            let mut out = String::new();
            s.read_to_string(&mut out)?;
            Ok(out)
        })
        .join()
        .unwrap()
    }
}

impl Drop for OtherHost {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["link", "del", &self.host_end]).status();
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).status();
    }
}

#[test]
fn outbound_traffic_is_masqueraded() {
    let Some((_reg, b, image)) = setup() else { return };
    let other = OtherHost::new();
    let seen = other.accept_one();
    let out = sh(&b, &[], &image, &format!("nc {} 9000 </dev/null", other.addr));
    let peer = seen.join().unwrap();
    assert_eq!(
        peer, other.host_addr,
        "the other host sees the host's address, not 10.222.x"
    );
    assert_eq!(out, format!("you are {}\n", other.host_addr));
}

#[test]
fn teardown_and_crash_leftovers() {
    let Some((_reg, b, image)) = setup() else { return };
    // Each --rm container takes and gives back its address and veth (other
    // tests' containers share barge0, so the leases of this store are counted).
    let ours = b.root().join("containers").display().to_string();
    let our_leases = || {
        std::fs::read_dir("/run/barge/leases/barge0")
            .map(|rd| {
                rd.flatten()
                    .filter(|e| std::fs::read_to_string(e.path()).unwrap_or_default().starts_with(&ours))
                    .count()
            })
            .unwrap_or(0)
    };
    for _ in 0..3 {
        let veth = sh(&b, &[], &image, "cat /sys/class/net/eth0/iflink");
        assert!(!veth.trim().is_empty());
    }
    assert_eq!(our_leases(), 0);
    let c = web(&b, &["--name", "victim", "-p", "127.0.0.1::8080"], &image);
    let id = c.trim().to_string();
    let veth = veth_of(&b, "victim");
    let dir = b.root().join("containers").join(&id);
    assert!(dir.join("netns").exists());
    // A crash: the monitor and the container die without detaching.
    let state: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("state.json")).unwrap()).unwrap();
    for pid in [&state["monitor_pid"], &state["pid"]] {
        barge_tests::kill(pid.as_u64().unwrap() as u32, rustix::process::Signal::KILL);
    }
    wait_until("the crash to show", || {
        b.ok(&["ps", "-a", "--filter", "name=victim", "--format", "{{.State}}"])
            .trim()
            == "exited"
    });
    let lease_dir = std::path::Path::new("/run/barge/leases/barge0");
    let holds = || {
        std::fs::read_dir(lease_dir)
            .map(|rd| {
                rd.flatten()
                    .any(|e| std::fs::read_to_string(e.path()).unwrap_or_default() == dir.display().to_string())
            })
            .unwrap_or(false)
    };
    assert!(holds(), "the crash left the lease");
    let pruned = b.run(&["network", "prune", "-f"]);
    assert!(pruned.status.success());
    let said = String::from_utf8_lossy(&pruned.stderr);
    assert!(
        said.contains("network namespace of") && said.contains("address 10.222."),
        "{said}"
    );
    assert!(!holds());
    assert!(!dir.join("netns").exists());
    wait_until("the veth to go with the namespace", || !links().contains(&veth));
    b.ok(&["rm", "victim"]);
    assert_eq!(our_leases(), 0);
    // container prune detaches too.
    b.ok(&["create", "--name", "idle", &image, "true"]);
    b.ok(&["start", "-a", "idle"]);
    b.ok(&["container", "prune", "-f"]);
    assert!(b.run(&["inspect", "idle"]).status.code() == Some(1));
}

#[test]
fn the_default_bridge_follows_bridge_and_bip_in_barge_json() {
    let Some((_reg, b, image)) = setup() else { return };
    // A device of its own, so that tests running meanwhile keep barge0.
    let n = std::process::id() % 250;
    let device = format!("bt{n}");
    let _cleanup = LinkGone(device.clone());
    let settings = b.dir.path().join("barge-config/barge.json");
    std::fs::write(
        &settings,
        format!(r#"{{"bridge": "{device}", "bip": "10.225.{n}.1/24"}}"#),
    )
    .unwrap();
    let out = sh(&b, &[], &image, "ip -o -4 addr show eth0; ip route");
    assert!(out.contains(&format!("inet 10.225.{n}.2/24")), "{out}");
    assert!(out.contains(&format!("default via 10.225.{n}.1 dev eth0")), "{out}");
    assert!(links().contains(&device));
    let inspect: serde_json::Value = serde_json::from_str(&b.ok(&["network", "inspect", "bridge"])).unwrap();
    assert_eq!(inspect[0]["Options"]["com.docker.network.bridge.name"], device.as_str());
    // Changing it while a container runs on it waits; the old device goes once none does.
    b.ok(&["run", "-d", "--name", "holder", &image, "sleep", "60"]);
    std::fs::write(
        &settings,
        format!(r#"{{"bridge": "{device}", "bip": "10.226.{n}.1/24"}}"#),
    )
    .unwrap();
    let ps = b.run(&["ps", "-q"]);
    assert!(ps.status.success());
    assert!(String::from_utf8_lossy(&ps.stderr).contains("not applied yet"));
    b.ok(&["rm", "-f", "holder"]);
    let out = sh(&b, &[], &image, "ip -o -4 addr show eth0");
    assert!(out.contains(&format!("inet 10.226.{n}.2/24")), "{out}");
    std::fs::write(&settings, r#"{"bip": "10.225.0.300/24"}"#).unwrap();
    let e = b.run(&["run", "--rm", &image, "true"]);
    assert_eq!(e.status.code(), Some(125));
    assert!(
        String::from_utf8_lossy(&e.stderr).contains("barge.json"),
        "{}",
        String::from_utf8_lossy(&e.stderr)
    );
}

/// A bridge name barge.json lets through and the kernel refuses (a link
/// name has no ':'): the user reads what barge was doing and the kernel's
/// errno as netlink returned it, and nothing is left behind.
#[test]
fn a_bridge_name_the_kernel_refuses_reaches_the_user() {
    let Some((_reg, b, image)) = setup() else { return };
    let n = std::process::id() % 250;
    let device = format!("bt:{n}");
    std::fs::write(
        b.dir.path().join("barge-config/barge.json"),
        format!(r#"{{"bridge": "{device}", "bip": "10.227.{n}.1/24"}}"#),
    )
    .unwrap();
    let e = b.run(&["run", "--rm", &image, "true"]);
    assert_eq!(e.status.code(), Some(125));
    let stderr = String::from_utf8_lossy(&e.stderr);
    assert!(
        stderr.contains(&format!("creating bridge {device} of network bridge ")),
        "{stderr}"
    );
    // The errno as text, not std's "(os error 22)".
    assert!(stderr.contains("needs no bridge): Invalid argument"), "{stderr}");
    assert!(!stderr.contains("os error"), "{stderr}");
    assert!(!links().contains(&device));
    assert_eq!(b.ok(&["ps", "-aq"]).trim(), "");
}

/// Deletes a link when dropped, passed or failed, and the firewall rules
/// barge made for it.
struct LinkGone(String);

impl Drop for LinkGone {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["link", "del", &self.0]).status();
        for table in ["filter", "nat"] {
            let rules = Command::new("iptables").args(["-w", "-t", table, "-S"]).output();
            let rules = rules
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default();
            for rule in rules.lines().filter(|l| l.split(' ').any(|w| w == self.0)) {
                let Some(spec) = rule.strip_prefix("-A ") else { continue };
                let _ = Command::new("iptables")
                    .args(["-w", "-t", table, "-D"])
                    .args(spec.split(' '))
                    .status();
            }
        }
    }
}

/// Removes a test's networks when dropped, passed or failed (their
/// containers first), so no bridge or rule outlives the test.
struct NetworksGone<'a>(&'a Barge, Vec<String>);

impl Drop for NetworksGone<'_> {
    fn drop(&mut self) {
        let ids = self.0.run(&["ps", "-aq"]);
        let ids = String::from_utf8_lossy(&ids.stdout).into_owned();
        let mut rm = vec!["rm", "-f"];
        rm.extend(ids.lines().filter(|l| !l.is_empty()));
        if rm.len() > 2 {
            let _ = self.0.run(&rm);
        }
        for n in &self.1 {
            let _ = self.0.run(&["network", "rm", n]);
        }
    }
}

/// `iptables -S` of a table.
fn iptables_rules(table: &str) -> String {
    let o = Command::new("iptables")
        .args(["-w", "-t", table, "-S"])
        .output()
        .unwrap();
    assert!(o.status.success());
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn iptables_ok(args: &[String]) {
    let o = Command::new("iptables").arg("-w").args(args).output().unwrap();
    assert!(
        o.status.success(),
        "iptables {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Rules the test adds for the host: one at the head of FORWARD and one in
/// BARGE-USER (both for a TEST-NET address nothing uses); removed on drop.
struct HostRules {
    forward: Vec<String>,
    user: Vec<String>,
}

impl HostRules {
    fn add(n: u32) -> HostRules {
        let rule = |chain: &str| {
            [chain, "-s", &format!("192.0.2.{n}/32"), "-j", "RETURN"]
                .map(String::from)
                .to_vec()
        };
        let (forward, user) = (rule("FORWARD"), rule("BARGE-USER"));
        let _ = Command::new("iptables").args(["-w", "-N", "BARGE-USER"]).output();
        iptables_ok(&[vec!["-I".to_string()], forward.clone()].concat());
        iptables_ok(&[vec!["-A".to_string()], user.clone()].concat());
        HostRules { forward, user }
    }

    /// As `iptables -S` prints them.
    fn lines(&self) -> [String; 2] {
        [
            format!("-A {}", self.forward.join(" ")),
            format!("-A {}", self.user.join(" ")),
        ]
    }
}

impl Drop for HostRules {
    fn drop(&mut self) {
        for r in [&self.forward, &self.user] {
            let _ = Command::new("iptables").args(["-w", "-D"]).args(r).status();
        }
    }
}

/// docker's model: containers on different networks cannot connect, and
/// nothing from outside reaches a container's port unless published (then
/// through the host's port); barge's rules come after the host's.
#[test]
fn networks_are_isolated_and_only_published_ports_come_in() {
    let Some((_reg, b, image)) = setup() else { return };
    let n = std::process::id() % 250;
    let host_rules = HostRules::add(n);
    let other = OtherHost::new();
    let (net_a, net_b) = (format!("isoa{n}"), format!("isob{n}"));
    let (subnet_a, subnet_b) = (format!("10.229.{n}.0/24"), format!("10.230.{n}.0/24"));
    let id_a = b
        .ok(&["network", "create", "--subnet", &subnet_a, &net_a])
        .trim()
        .to_string();
    let id_b = b
        .ok(&["network", "create", "--subnet", &subnet_b, &net_b])
        .trim()
        .to_string();
    let bridges = [format!("br-{}", &id_a[..12]), format!("br-{}", &id_b[..12])];
    let _gone = NetworksGone(&b, vec![net_a.clone(), net_b.clone()]);
    // What an older barge left for A at the head of FORWARD goes at the next start.
    for dir in ["-i", "-o"] {
        iptables_ok(&["-I", "FORWARD", dir, &bridges[0], "-j", "ACCEPT"].map(String::from));
    }
    let port = barge_tests::free_port();
    // On A: one server unpublished, one published on the host's address facing the other host.
    web(&b, &["--name", "hidden", "--network", &net_a], &image);
    web(
        &b,
        &[
            "--name",
            "public",
            "--network",
            &net_a,
            "-p",
            &format!("{}:{port}:8080", other.host_addr),
        ],
        &image,
    );
    let ip_of = |name: &str| {
        b.ok(&["inspect", "--format", "{{.NetworkSettings.IPAddress}}", name])
            .trim()
            .to_string()
    };
    let hidden = ip_of("hidden");
    // From a container on `network` (its own run: exec may share the host's network).
    let from = |network: &str, script: &str| b.run(&["run", "--rm", "--network", network, &image, "sh", "-c", script]);
    // Same network: allowed (and the server is up).
    let got = from(
        &net_a,
        &format!("{RETRY} wget -qO- http://{hidden}:8080/ && break; sleep 0.1; done"),
    );
    assert_eq!(String::from_utf8_lossy(&got.stdout), "served from the container\n");
    // Another user network, the default bridge: no connection.
    // (busybox's wget -T crashes: timeout bounds the wait instead, with sh
    // staying PID 1, as PID 1 would ignore its SIGTERM.)
    for network in [net_b.as_str(), "bridge"] {
        let e = from(
            network,
            &format!("timeout 3 wget -qO- http://{hidden}:8080/; echo exit $?"),
        );
        let out = String::from_utf8_lossy(&e.stdout);
        assert!(
            out.contains("exit ") && !out.contains("exit 0") && !out.contains("served"),
            "a container on {network} reached one on another network: {out}"
        );
    }
    // A published port is reached through the host from any network.
    let got = from(
        &net_b,
        &format!(
            "{RETRY} wget -qO- http://{}:{port}/ && break; sleep 0.1; done",
            other.host_addr
        ),
    );
    assert_eq!(String::from_utf8_lossy(&got.stdout), "served from the container\n");

    // Another host routing to the subnet: the published port only.
    other.route(&subnet_a);
    wait_until("the published port from the other host", || {
        other
            .http_get(&other.host_addr, port)
            .is_ok_and(|p| p.ends_with("served from the container\n"))
    });
    let direct = other.http_get(&hidden, 8080);
    assert!(
        direct.is_err(),
        "the other host reached an unpublished port: {direct:?}"
    );
    let direct = other.http_get(&ip_of("public"), 8080);
    assert!(direct.is_err(), "only through the host's port: {direct:?}");

    // barge's rules: after the host's own, and never in BARGE-USER.
    let filter = iptables_rules("filter");
    let [host_forward, host_user] = host_rules.lines();
    let forward: Vec<&str> = filter.lines().filter(|l| l.starts_with("-A FORWARD ")).collect();
    assert!(
        !forward.iter().any(|l| l.contains(&bridges[0])),
        "the older rules are gone: {filter}"
    );
    let mine = |l: &&str| l.contains("BARGE") || bridges.iter().any(|br| l.contains(br.as_str()));
    let host_at = forward.iter().position(|l| *l == host_forward).unwrap();
    assert!(
        forward.iter().position(mine).is_some_and(|p| p > host_at),
        "barge's rules come after the host's: {filter}"
    );
    let user: Vec<&str> = filter.lines().filter(|l| l.starts_with("-A BARGE-USER ")).collect();
    assert!(user.contains(&host_user.as_str()), "{filter}");
    assert!(
        !user.iter().any(|l| bridges.iter().any(|br| l.contains(br.as_str()))),
        "{filter}"
    );
    assert!(forward.contains(&"-A FORWARD -j BARGE-FORWARD"), "{filter}");

    // network rm removes exactly its rules; prune too.
    b.ok(&["rm", "-f", "hidden", "public"]);
    b.ok(&["network", "rm", &net_a]);
    let gone = |bridge: &str| {
        let all = format!("{}{}", iptables_rules("filter"), iptables_rules("nat"));
        !all.contains(bridge)
    };
    assert!(gone(&bridges[0]), "{}", iptables_rules("filter"));
    assert!(!gone(&bridges[1]), "the other network keeps its rules");
    let pruned = b.ok(&["network", "prune", "-f"]);
    assert!(pruned.contains(&net_b), "{pruned}");
    assert!(gone(&bridges[1]), "{}", iptables_rules("filter"));
    let filter = iptables_rules("filter");
    for kept in host_rules.lines() {
        assert!(filter.contains(&kept), "the host's rule {kept} stays: {filter}");
    }
}

/// Monitor of a running container: its pid, threads and open descriptors.
fn monitor_counts(b: &Barge, name: &str) -> (i32, usize, usize) {
    let id = b.ok(&["inspect", "--format", "{{.Id}}", name]);
    let dir = b.root().join("containers").join(id.trim());
    let state: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("state.json")).unwrap()).unwrap();
    let pid = state["monitor_pid"].as_i64().unwrap() as i32;
    let count = |what: &str| std::fs::read_dir(format!("/proc/{pid}/{what}")).unwrap().count();
    (pid, count("task"), count("fd"))
}

/// A UDP echo server inside a container's network namespace, run by the
/// test; counts the datagrams it got.
fn udp_echo_in(netns: std::path::PathBuf, port: u16) -> std::sync::Arc<std::sync::atomic::AtomicUsize> {
    let got = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = got.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        enter_netns(&netns).unwrap();
        let s = std::net::UdpSocket::bind((Ipv4Addr::UNSPECIFIED, port)).unwrap();
        tx.send(()).unwrap();
        let mut buf = [0u8; 64];
        while let Ok((len, from)) = s.recv_from(&mut buf) {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let _ = s.send_to(&buf[..len], from);
        }
    });
    rx.recv_timeout(Duration::from_secs(10)).unwrap();
    got
}

/// One datagram from each of thousands of source ports: the monitor keeps
/// a bounded number of flows (oldest closed), no thread per client, and
/// the port still answers.
#[test]
fn published_udp_ports_keep_threads_and_sockets_bounded() {
    let Some((_reg, b, image)) = setup() else { return };
    b.ok(&[
        "run",
        "-d",
        "--name",
        "udp",
        "-p",
        "127.0.0.1::5353/udp",
        &image,
        "sleep",
        "300",
    ]);
    let id = b.ok(&["inspect", "--format", "{{.Id}}", "udp"]);
    let netns = b.root().join("containers").join(id.trim()).join("netns");
    let received = udp_echo_in(netns, 5353);
    let mapped = b.ok(&["port", "udp", "5353/udp"]);
    let port: u16 = mapped.trim().rsplit(':').next().unwrap().parse().unwrap();
    let (pid, threads, fds) = monitor_counts(&b, "udp");
    const CLIENTS: usize = 3000;
    // Each client waits for its echo, so no datagram is dropped for a full buffer.
    let mut echoed = 0;
    let mut buf = [0u8; 16];
    for i in 0..CLIENTS {
        let c = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        c.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        c.send_to(format!("{i}").as_bytes(), ("127.0.0.1", port)).unwrap();
        echoed += usize::from(
            c.recv(&mut buf)
                .is_ok_and(|len| buf[..len] == *format!("{i}").as_bytes()),
        );
    }
    let got = received.load(std::sync::atomic::Ordering::SeqCst);
    assert!(echoed >= CLIENTS - 10, "{echoed} of {CLIENTS} echoed, {got} received");
    // Threads that served the burst end; wait for that rather than a while.
    wait_until("the forwarder's threads to settle", || {
        monitor_counts(&b, "udp").1 <= threads + 1
    });
    let (same, threads_after, fds_after) = monitor_counts(&b, "udp");
    assert_eq!(same, pid);
    eprintln!("monitor: threads {threads} -> {threads_after}, descriptors {fds} -> {fds_after}");
    assert!(
        threads_after <= threads + 1,
        "threads {threads} -> {threads_after} after {CLIENTS} clients"
    );
    // At most the cap of flows is open (1024), not one per client.
    assert!(
        fds_after <= fds + 1024 + 8,
        "descriptors {fds} -> {fds_after} after {CLIENTS} clients"
    );
    // A new client is still served, replies included.
    let c = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    c.send_to(b"ping", ("127.0.0.1", port)).unwrap();
    let mut buf = [0u8; 16];
    let len = c.recv(&mut buf).unwrap();
    assert_eq!(&buf[..len], b"ping");
    b.ok(&["rm", "-f", "udp"]);
}
