#!/usr/bin/env python3
"""Writes the seed corpora in fuzz/seeds/<target>/ (committed; run again
only to change them). Small, real-world inputs: references as people type
them, challenge headers as registries send them, manifests and indexes as
registries serve them, docker config files, tiny layer tarballs."""

import gzip
import io
import json
import os
import tarfile

HERE = os.path.dirname(os.path.abspath(__file__))
HEX = "a3ed95caeb02ffe68cdd9fd84406680ae93d633cb16422d00e8a7c22955b46d4"
HEX2 = "6e9f67fa63b0323e9a1e587fd71c561ba48a034504fb804fd26fd8800039835d"
HEX3 = "7264a8db6415046d36d16ba98b79778e18accee6ffa71850405994cffa9be7de"


def write(target, name, data):
    d = os.path.join(HERE, "seeds", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def references():
    refs = [
        "busybox",
        "alpine:3.20",
        "library/ubuntu:24.04",
        "user/app",
        "docker.io/library/busybox:latest",
        "index.docker.io/library/nginx:1.27-alpine",
        "localhost/app",
        "localhost:5000/team/app:v1.2.3",
        "127.0.0.1:5000/app",
        "[::1]:5000/app:dev",
        "ghcr.io/owner/repo/sub:main",
        "registry.gitlab.com/group/sub-group/project/image:1.0",
        "quay.io/prometheus/node-exporter:v1.8.1",
        f"busybox@sha256:{HEX}",
        f"localhost:5000/app:1.0@sha256:{HEX2}",
        "my-registry.example.com:443/a__b/c.d/e--f:_tag.1-x",
        "linux/amd64",
        "linux/arm64/v8",
        "linux/arm/v7",
        "windows/amd64",
        "BusyBox:Latest",
        f"{HEX}",
        "a/b@sha512:abcd",
    ]
    for i, r in enumerate(refs):
        write("reference", f"{i:02}", r)


def challenges():
    headers = [
        'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
        'scope="repository:library/busybox:pull"',
        'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
        'scope="repository:library/busybox:pull,push",error="insufficient_scope"',
        'Bearer realm="https://gitlab.com/jwt/auth",service="container_registry",'
        'scope="repository:group/project:pull"',
        'Bearer realm="https://ghcr.io/token",service="ghcr.io",scope="repository:owner/repo:pull"',
        'Bearer realm="https://quay.io/v2/auth",service="quay.io"',
        'Basic realm="Registry Realm"',
        'Basic realm="x y", Bearer  realm = "https://a/t" , error="insufficient_scope",scope=repo:a:pull',
        'Bearer realm="a\\"b\\\\c",service=svc',
        'Negotiate, NTLM, Basic realm="corp"',
        'Bearer token68abc==',
    ]
    for i, h in enumerate(headers):
        write("www_authenticate", f"{i:02}", h)


def desc(media, hexd, size, **extra):
    d = {"mediaType": media, "digest": f"sha256:{hexd}", "size": size}
    d.update(extra)
    return d


def manifests():
    oci_manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": desc("application/vnd.oci.image.config.v1+json", HEX, 581),
        "layers": [
            desc("application/vnd.oci.image.layer.v1.tar+gzip", HEX2, 3623807),
            desc("application/vnd.oci.image.layer.v1.tar+zstd", HEX3, 42,
                 annotations={"org.opencontainers.image.title": "x"}),
        ],
        "annotations": {"org.opencontainers.image.created": "2024-06-01T00:00:00Z"},
    }
    docker_manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": desc("application/vnd.docker.container.image.v1+json", HEX, 1472),
        "layers": [
            desc("application/vnd.docker.image.rootfs.diff.tar.gzip", HEX2, 2152262),
            desc("application/vnd.docker.image.rootfs.foreign.diff.tar.gzip", HEX3, 9,
                 urls=["https://example.com/layer"]),
        ],
    }
    oci_index = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            desc("application/vnd.oci.image.manifest.v1+json", HEX, 1022,
                 platform={"architecture": "amd64", "os": "linux"}),
            desc("application/vnd.oci.image.manifest.v1+json", HEX2, 1022,
                 platform={"architecture": "arm64", "os": "linux", "variant": "v8"}),
            desc("application/vnd.oci.image.manifest.v1+json", HEX3, 1022,
                 platform={"architecture": "amd64", "os": "windows", "os.version": "10.0.17763.1",
                           "os.features": ["win32k"]}),
            desc("application/vnd.oci.image.manifest.v1+json", HEX3, 566,
                 platform={"architecture": "unknown", "os": "unknown"},
                 annotations={"vnd.docker.reference.type": "attestation-manifest",
                              "vnd.docker.reference.digest": f"sha256:{HEX}"}),
        ],
    }
    docker_list = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.list.v2+json",
        "manifests": [
            desc("application/vnd.docker.distribution.manifest.v2+json", HEX, 528,
                 platform={"architecture": "arm", "os": "linux", "variant": "v7"}),
            desc("application/vnd.docker.distribution.manifest.v2+json", HEX2, 528,
                 platform={"architecture": "aarch64", "os": "linux"}),
        ],
    }
    # OCI without mediaType: told by shape.
    bare_manifest = {k: v for k, v in oci_manifest.items() if k != "mediaType"}
    bare_index = {k: v for k, v in oci_index.items() if k != "mediaType"}
    store_index = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            desc("application/vnd.oci.image.manifest.v1+json", HEX, 1022, annotations={
                "org.opencontainers.image.ref.name": "docker.io/library/busybox:latest",
                "dev.barge.image.id": f"sha256:{HEX2}",
                "dev.barge.image.size": "4261550",
            }),
        ],
    }
    schema1 = {"schemaVersion": 1, "name": "library/busybox", "tag": "latest", "fsLayers": []}
    config = {
        "architecture": "amd64",
        "os": "linux",
        "created": "2024-06-01T00:00:00.123456789Z",
        "config": {"Env": ["PATH=/usr/bin"], "Cmd": ["sh"], "Labels": {"a": "b", "n": 1}},
        "rootfs": {"type": "layers", "diff_ids": [f"sha256:{HEX}", f"sha256:{HEX2}"]},
        "history": [{"created_by": "/bin/sh -c #(nop) ADD file:x in /"}, {"empty_layer": True}],
    }
    docs = [oci_manifest, docker_manifest, oci_index, docker_list, bare_manifest, bare_index,
            store_index, schema1, config]
    for i, d in enumerate(docs):
        write("manifest", f"{i:02}", json.dumps(d, indent=3 if i % 2 else None))


def docker_configs():
    docs = [
        {"auths": {"https://index.docker.io/v1/": {"auth": "dXNlcjpwYXNz"}}},
        {"auths": {"localhost:5000": {"username": "u", "password": "p"},
                   "ghcr.io": {"auth": "b3duZXI6Z2hwX3Rva2Vu", "identitytoken": "refresh-xyz"}},
         "psFormat": "table {{.ID}}"},
        {"auths": {"registry.gitlab.com": {}, "quay.io": {"registrytoken": "bearer-abc"}},
         "credsStore": "desktop"},
        {"auths": {"https://registry-1.docker.io/v2/": {"auth": "Ojo="}},
         "credHelpers": {"gcr.io": "gcloud", "123456789.dkr.ecr.us-east-1.amazonaws.com": "ecr-login",
                         "docker.io": ""}},
        {"auths": {"x.io": {"auth": "!!!"}, "http://Localhost:5000/v2/": {"auth": " dTpw "}}},
    ]
    for i, d in enumerate(docs):
        write("docker_config", f"{i:02}", json.dumps(d, indent="\t" if i % 2 else None))
    write("docker_config", "05", "  \n")
    write("docker_config", "06", "[1,2]")


def tar_bytes(entries, fmt=tarfile.GNU_FORMAT):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as t:
        for info, data in entries:
            info.mtime = 1_600_000_000
            t.addfile(info, io.BytesIO(data) if data is not None else None)
        end = t.offset
    # Two zero blocks end the archive; the padding to tarfile's 10 KiB record is dropped.
    return buf.getvalue()[:end + 1024]


def entry(name, kind=tarfile.REGTYPE, data=b"", mode=0o644, link="", **kw):
    i = tarfile.TarInfo(name)
    i.type = kind
    i.mode = mode
    i.linkname = link
    i.size = len(data) if kind == tarfile.REGTYPE else 0
    for k, v in kw.items():
        setattr(i, k, v)
    return i, (data if kind == tarfile.REGTYPE else None)


def layers():
    basic = tar_bytes([
        entry("etc/", tarfile.DIRTYPE, mode=0o755),
        entry("etc/hostname", data=b"barge\n"),
        entry("bin/", tarfile.DIRTYPE, mode=0o755),
        entry("bin/busybox", data=b"\x7fELF" + b"\0" * 60, mode=0o4755),
        entry("bin/sh", tarfile.SYMTYPE, link="busybox"),
        entry("bin/ls", tarfile.LNKTYPE, link="bin/busybox"),
        entry("tmp/", tarfile.DIRTYPE, mode=0o1777),
        entry("run/fifo", tarfile.FIFOTYPE, mode=0o600),
    ])
    whiteouts = tar_bytes([
        entry("etc/", tarfile.DIRTYPE, mode=0o755),
        entry("etc/.wh.hostname"),
        entry("var/cache/", tarfile.DIRTYPE, mode=0o755),
        entry("var/cache/.wh..wh..opq"),
        entry("var/.wh..wh.plnk"),
        entry("usr/lib/.wh.gone"),
    ])
    hostile = tar_bytes([
        entry("../escape", data=b"x"),
        entry("/abs/file", data=b"y"),
        entry("up", tarfile.SYMTYPE, link="../.."),
        entry("up/through", data=b"z"),
        entry("root", tarfile.SYMTYPE, link="/"),
        entry("root/etc/passwd", data=b"owned\n"),
        entry("hl", tarfile.LNKTYPE, link="/etc/passwd"),
        entry("loop", tarfile.SYMTYPE, link="loop"),
        entry("loop/x", data=b"l"),
        entry("dev/null", tarfile.CHRTYPE, devmajor=1, devminor=3),
    ])
    replace = tar_bytes([
        entry("a/", tarfile.DIRTYPE, mode=0o755),
        entry("a/f", data=b"1"),
        entry("a", tarfile.SYMTYPE, link="b"),
        entry("b/", tarfile.DIRTYPE, mode=0o500),
        entry("a/g", data=b"2"),
        entry("./", tarfile.DIRTYPE, mode=0o755),
        entry("c", data=b"3", mode=0o000),
        entry("c", tarfile.DIRTYPE, mode=0o000),
    ])
    pax = tar_bytes([
        entry("long/" + "n" * 120 + "/file", data=b"long name",
              pax_headers={"mtime": "1700000000.123456789", "SCHILY.xattr.user.mime": "text/plain",
                           "SCHILY.xattr.trusted.overlay.opaque": "y", "uid": "4294967296"}),
        entry("link-" + "l" * 110, tarfile.SYMTYPE, link="t" * 200),
    ], fmt=tarfile.PAX_FORMAT)
    sparse = tar_bytes([entry("zeros", data=b"\0" * 70000 + b"end")])
    write("layer_apply", "00-basic.tar", basic)
    write("layer_apply", "01-whiteouts.tar", whiteouts)
    write("layer_apply", "02-hostile.tar", hostile)
    write("layer_apply", "03-replace.tar", replace)
    write("layer_apply", "04-pax.tar", pax)
    write("layer_apply", "05-basic.tar.gz", gzip.compress(basic, mtime=0))
    # Two gzip members, as some tools write.
    write("layer_apply", "06-members.tar.gz",
          gzip.compress(whiteouts[:1024], mtime=0) + gzip.compress(whiteouts[1024:], mtime=0))
    write("layer_apply", "07-sparse.tar.gz", gzip.compress(sparse, mtime=0))


def signatures():
    digest = "sha256:" + HEX
    payloads = [
        {"critical": {"identity": {"docker-reference": "localhost:5000/app:v1"},
                      "image": {"docker-manifest-digest": digest},
                      "type": "cosign container image signature"},
         "optional": None},
        {"critical": {"identity": {"docker-reference": "quay.io/team/app"},
                      "image": {"docker-manifest-digest": digest},
                      "type": "cosign container image signature"},
         "optional": {"creator": "containers/image", "timestamp": 1700000000}},
        {"critical": {"identity": {"docker-reference": "a/b"},
                      "image": {"docker-manifest-digest": "sha512:00"},
                      "type": "atomic container signature"}},
        # Numbers that a fast, not correctly rounded parser reads back as a
        # neighbouring double (a fuzzer finding).
        {"critical": {"identity": {"docker-reference": "quay.io/team/app"},
                      "image": {"docker-manifest-digest": digest},
                      "type": "cosign container image signature"},
         "optional": {"creator": "containers/image", "n": 1.7006666666666667e69,
                      "m": 2.2250738585072011e-308}},
    ]
    for i, p in enumerate(payloads):
        write("signature_payload", "%02d-payload.json" % i, json.dumps(p, separators=(",", ":")))
    layer = {"mediaType": "application/vnd.dev.cosign.simplesigning.v1+json", "size": 240,
             "digest": "sha256:" + HEX2,
             "annotations": {"dev.cosignproject.cosign/signature": "MEUCIQDx"}}
    keyless = dict(layer, annotations={"dev.cosignproject.cosign/signature": "!!",
                                       "dev.sigstore.cosign/certificate": "-----BEGIN CERTIFICATE-----"})
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "size": 233,
                           "digest": "sha256:" + HEX3},
                "layers": [layer, keyless]}
    write("signature_payload", "10-manifest.json", json.dumps(manifest))


def pem(label, der):
    import base64
    body = base64.b64encode(der).decode()
    lines = [body[i:i + 64] for i in range(0, len(body), 64)]
    return "-----BEGIN %s-----\n%s\n-----END %s-----\n" % (label, "\n".join(lines), label)


# Made once with openssl genpkey (P-256 and Ed25519) for these seeds.
P256_PKCS8 = bytes.fromhex(
    "308187020100301306072a8648ce3d020106082a8648ce3d030107046d306b02010104206ff9d22d5333639e6ef924"
    "7709d275be7bc09aea1ca19d77fedbf882e76a75eba14403420004b146abbee34ae0edbd43fdb03348d9887d3a003a"
    "0dba664be1ad93530d9248f2bdd45653aabf2de227978c0078b4040774a2f86bf5b660683851a069189b422d")
P256_SPKI = bytes.fromhex(
    "3059301306072a8648ce3d020106082a8648ce3d03010703420004b146abbee34ae0edbd43fdb03348d9887d3a003a"
    "0dba664be1ad93530d9248f2bdd45653aabf2de227978c0078b4040774a2f86bf5b660683851a069189b422d")
ED25519_PKCS8 = bytes.fromhex(
    "302e020100300506032b65700422042021a0730f5d16dbee6ef327014cbd9eb7c0000c71cbc0e1370014f546cfd2b950")
# cosign generate-key-pair's output (Ed25519, empty password), from cosign's tests.
COSIGN_ED25519_KEY = """-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----
eyJrZGYiOnsibmFtZSI6InNjcnlwdCIsInBhcmFtcyI6eyJOIjo2NTUzNiwiciI6
OCwicCI6MX0sInNhbHQiOiJxYVVSY1ppbTN3RE9ZMVlselFGaFdVWHBnMU5tZlAv
YndiM2ZpWE54ck5BPSJ9LCJjaXBoZXIiOnsibmFtZSI6Im5hY2wvc2VjcmV0Ym94
Iiwibm9uY2UiOiJMRjNVN3crNXgzWmRvMlNGUkFicE1nY1N5Y2sxN3R1LyJ9LCJj
aXBoZXJ0ZXh0IjoiY2lUQTYrODVWRDdsTlpwRTVLdmpMdjJrTXNZdmtvOHNHV0tq
QTRYZDY2WFRaTUw3UG5xczQ2NloycDRyWGJUdXBlcStwSXlnSXhvS29UVmFHbG9N
RXc9PSJ9
-----END ENCRYPTED SIGSTORE PRIVATE KEY-----
"""


def keys():
    write("cosign_keys", "00-p256.pkcs8", P256_PKCS8)
    write("cosign_keys", "01-p256.spki", P256_SPKI)
    write("cosign_keys", "02-ed25519.pkcs8", ED25519_PKCS8)
    write("cosign_keys", "03-p256.pub", pem("PUBLIC KEY", P256_SPKI))
    write("cosign_keys", "04-cosign-ed25519.key", COSIGN_ED25519_KEY)
    cheap = {"kdf": {"name": "scrypt", "params": {"N": 16, "r": 8, "p": 1}, "salt": "c2FsdA=="},
             "cipher": {"name": "nacl/secretbox", "nonce": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"},
             "ciphertext": "ZGVhZGJlZWZkZWFkYmVlZmRlYWRiZWVmZGVhZGJlZWY="}
    write("cosign_keys", "05-cheap.key",
          pem("ENCRYPTED COSIGN PRIVATE KEY", json.dumps(cheap, separators=(",", ":")).encode()))


def trust_configs():
    import base64
    key_data = base64.b64encode(pem("PUBLIC KEY", P256_SPKI).encode()).decode()
    policies = [
        {"default": [{"type": "insecureAcceptAnything"}]},
        {"default": [{"type": "reject"}],
         "transports": {"docker": {
             "localhost:5000": [{"type": "sigstoreSigned", "keyData": key_data,
                                 "signedIdentity": {"type": "matchRepository"}}],
             "quay.io/a": [{"type": "sigstoreSigned", "keyDatas": [key_data],
                            "signedIdentity": {"type": "remapIdentity", "prefix": "quay.io/a",
                                               "signedPrefix": "example.com/a"}}],
             "*.example.com": [{"type": "insecureAcceptAnything"}],
             "": [{"type": "signedBy", "keyType": "GPGKeys", "keyPath": "/k.gpg"}]}}},
        {"default": [{"type": "sigstoreSigned", "fulcio": {"caPath": "/ca"}, "rekorPublicKeyPath": "/r"}],
         "transports": {"docker-daemon": {"": [{"type": "insecureAcceptAnything"}]}}},
    ]
    for i, p in enumerate(policies):
        write("trust_config", "%02d-policy.json" % i, json.dumps(p, indent=2))
    write("trust_config", "10-registries.yaml",
          "# registries.d\ndefault-docker:\n  lookaside: https://example.com/sigs # where\n"
          "docker:\n  localhost:5000/app:\n    use-sigstore-attachments: true\n"
          "  'quay.io':\n    use-sigstore-attachments: false\n")


def templates():
    data = {"Name": "/web", "State": {"Status": "running", "Pid": 42},
            "NetworkSettings": {"Networks": {"bridge": {"IPAddress": "10.88.0.5"}}},
            "Config": {"Env": ["A=1"], "Labels": {"a": "b"}, "Entrypoint": None}, "Size": 1.5}
    templates = [
        "{{.Name}} {{.State.Status}}",
        "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
        "{{range $k, $v := .Config.Labels}}{{$k}}={{$v}}{{else}}none{{end}}",
        "{{if and .State.Pid (eq .State.Status \"running\")}}up{{else if .Name}}x{{end}}",
        "{{with $e := .Config.Env}}{{join $e \",\"}}{{end}} {{json .Config}}",
        "{{printf \"%-10s|%5.2f|%q\" .Name .Size (index .Config.Env 0)}}",
        "{{- /* c */ -}} {{ (split .Name \"/\") | len }} {{slice .Name 1}} {{title (lower .Name)}}",
        "{{range 3}}{{if eq . 1}}{{continue}}{{end}}{{.}}{{end}}",
    ]
    for i, t in enumerate(templates):
        write("template", "%02d-template" % i, t + "\0" + json.dumps(data))


references()
challenges()
manifests()
docker_configs()
layers()
signatures()
keys()
trust_configs()
templates()
