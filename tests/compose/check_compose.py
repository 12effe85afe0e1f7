#!/usr/bin/env python3
"""Checks compose/docker-compose.yml on paper (no Docker engine runs here).

1. `docker-compose config -q` accepts it (Debian's docker-compose 1.29).
2. Every build context, Dockerfile, build target and COPY source exists.
3. The init service's `ledgerkeep config init` command, run here into a
   temporary directory, writes every /etc/ledgerkeep/... file the services
   and the backup server's sshd_config refer to, and one node config and key
   per agent service.
4. Every program a service runs is a binary the build produces (or a system
   program the image installs).

Usage: check_compose.py SOURCE_DIR BIN_DIR. Exit 77 (skip) when docker-compose
is not installed.
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile

SKIP = 77


def fail(msg):
    print("FAIL: " + msg)
    sys.exit(1)


def main():
    src, bin_dir = sys.argv[1], sys.argv[2]
    compose_file = os.path.join(src, "compose", "docker-compose.yml")
    if shutil.which("docker-compose") is None:
        print("SKIP: docker-compose is not installed (it is in run's APT_PACKAGES: ./run deps)")
        sys.exit(SKIP)
    r = subprocess.run(["docker-compose", "-f", compose_file, "config", "-q"], capture_output=True, text=True)
    if r.returncode != 0:
        fail("docker-compose config -q: " + r.stderr + r.stdout)
    r = subprocess.run(["docker-compose", "-f", compose_file, "config"], capture_output=True, text=True, check=True)
    try:
        import yaml  # python3-yaml: a dependency of Debian's docker-compose
    except ImportError:
        # Another python3 first on PATH (pyenv, a venv): use Debian's, the one
        # docker-compose itself runs on.
        if sys.executable != "/usr/bin/python3" and os.access("/usr/bin/python3", os.X_OK):
            os.execv("/usr/bin/python3", ["/usr/bin/python3"] + sys.argv)
        fail("python3-yaml is not installed (a dependency of docker-compose)")

    cfg = yaml.safe_load(r.stdout)
    services = cfg["services"]
    print("docker-compose config: ok, services: " + " ".join(sorted(services)))

    # 2. Builds: the fast path (compose/Dockerfile.host: the host build's
    # binaries, staged into compose/host-bin/ by compose/stage-bin.sh, so that
    # COPY source may be missing here) and the from-source path
    # (compose/Dockerfile via docker-compose.source.yml, which installs run's
    # BUILD_PACKAGES with ./run deps --build-only); prometheus is Debian's
    # package on either path.
    source_file = os.path.join(src, "compose", "docker-compose.source.yml")
    r = subprocess.run(["docker-compose", "-f", compose_file, "-f", source_file, "config"], capture_output=True,
                       text=True)
    if r.returncode != 0:
        fail("docker-compose config with docker-compose.source.yml: " + r.stderr + r.stdout)
    source_services = yaml.safe_load(r.stdout)["services"]
    staged = {"host-bin/"}
    for path_kind, svcs in (("fast", services), ("source", source_services)):
        for name, svc in svcs.items():
            b = svc.get("build")
            if not b:
                fail(f"service {name} has no build section (the image is not in any registry)")
            ctx = b["context"]
            dockerfile = os.path.join(ctx, b.get("dockerfile", "Dockerfile"))
            if not os.path.isfile(dockerfile):
                fail(f"service {name}: {dockerfile} does not exist")
            text = open(dockerfile).read()
            stages = re.findall(r"^FROM\s+\S+\s+AS\s+(\S+)", text, re.M | re.I)
            if b.get("target") and b["target"] not in stages:
                fail(f"service {name}: target {b['target']} not among {stages}")
            for line in re.findall(r"^COPY\s+(?!--from)(.+)$", text, re.M):
                parts = line.split()
                for s_ in parts[:-1]:
                    if path_kind == "fast" and s_ in staged:
                        continue
                    if not os.path.exists(os.path.join(ctx, s_)):
                        fail(f"{dockerfile}: COPY source {s_} does not exist in {ctx}")
            compiles = "cmake --build" in text
            if path_kind == "source" and compiles and "./run deps --build-only" not in text:
                fail(f"{dockerfile}: does not install run's BUILD_PACKAGES (./run deps --build-only)")
            if path_kind == "source" and not compiles and name != "prometheus":
                fail(f"service {name}: the from-source path does not compile ({dockerfile})")
            if path_kind == "fast" and "ledgerkeep/debian:bookworm" not in text:
                fail(f"{dockerfile}: the fast path is not built on ledgerkeep/debian:bookworm")
    print("builds: contexts, Dockerfiles, targets and COPY sources exist")

    # 3. The generated config.
    init_cmd = services["init"]["command"]
    if init_cmd[:3] != ["ledgerkeep", "config", "init"]:
        fail("the init service does not run `ledgerkeep config init`: " + str(init_cmd))
    args = list(init_cmd[3:])
    out_index = args.index("--out") + 1
    container_out = args[out_index]
    with tempfile.TemporaryDirectory(prefix="lk-compose-") as tmp:
        args[out_index] = tmp
        args[args.index("--bin-dir") + 1] = bin_dir
        r = subprocess.run([os.path.join(bin_dir, "ledgerkeep"), "config", "init"] + args, capture_output=True,
                           text=True)
        if r.returncode != 0:
            fail("ledgerkeep config init " + " ".join(args) + ": " + r.stderr)
        # Every path under the config volume that a service or sshd uses.
        referenced = set()
        blob = yaml.safe_dump(services) + open(os.path.join(src, "compose", "backup", "sshd_config")).read()
        for m in re.findall(re.escape(container_out) + r"/[A-Za-z0-9_./-]+", blob):
            referenced.add(m)
        for path in sorted(referenced):
            local = tmp + path[len(container_out):]
            if not os.path.exists(local):
                fail(f"{path} is referenced but config init does not write it")
        print(f"config volume: the {len(referenced)} referenced files exist after config init")
        members = open(os.path.join(tmp, "members")).read().split()
        agents = [m for m in members if m != "broker"]
        for a in agents:
            if a not in services:
                fail(f"node {a} is in the generated cluster but has no service")
            cmd = " ".join(services[a]["command"])
            for want in (f"--node-id {a}", f"{container_out}/keys/{a}.key", f"{container_out}/nodes/{a}.toml"):
                if want not in cmd:
                    fail(f"service {a}: command lacks {want}")
        toml = open(os.path.join(tmp, "cluster.toml")).read()
        if 'connect_host = "broker"' not in toml or 'bind_host = "*"' not in toml:
            fail("cluster.toml: the broker is not reachable as `broker` on all interfaces")
        if "UserKnownHostsFile=" + container_out + "/keys/known_hosts" not in open(
                os.path.join(tmp, "nodes", "r1.toml")).read().replace(tmp, container_out):
            fail("nodes/r1.toml: no known_hosts for the backup server")
        print("agents: " + " ".join(agents) + " each have a service, key and node config")

    # 4. Programs.
    system = {"/usr/sbin/sshd"}
    for name, svc in services.items():
        if "command" not in svc:
            # Runs its image's entrypoint (prometheus: Debian's package).
            b = svc.get("build", {})
            if "ENTRYPOINT" not in open(os.path.join(b.get("context", "."), b.get("dockerfile", "Dockerfile"))).read():
                fail(f"service {name} has no command and its Dockerfile no ENTRYPOINT")
            continue
        prog = svc["command"][0]
        if prog not in system and not os.access(os.path.join(bin_dir, os.path.basename(prog)), os.X_OK):
            fail(f"service {name} runs {prog}, which the build does not produce")
    print("programs: ok")
    print("PASS")


if __name__ == "__main__":
    main()
