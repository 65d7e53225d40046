"""The control socket's defences (docs/security.md, "Local users"): who may
connect, the admin group, the connection cap, slow and stalled clients."""
import grp
import json
import os
import socket
import stat
import time

from conftest import FAST_CONFIG, Runtime, run, sh_module, write_json

NOBODY = 65534


def as_user(uid, gid, groups, fn):
    """Run fn() in a forked child as uid/gid/groups; its return value (JSON-able)
    comes back through a pipe."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            os.setgroups(groups)
            os.setgid(gid)
            os.setuid(uid)
            out = {"ok": fn()}
        except Exception as e:  # noqa: BLE001 - reported to the parent
            out = {"exc": f"{type(e).__name__}: {e}"}
        os.write(w, json.dumps(out).encode())
        os._exit(0)
    os.close(w)
    data = b""
    while chunk := os.read(r, 65536):
        data += chunk
    os.close(r)
    os.waitpid(pid, 0)
    return json.loads(data)


def traversable(path):
    """Let others search the directories above path (pytest's are 0700)."""
    for d in list(path.parents)[:-1]:
        os.chmod(d, os.stat(d).st_mode | 0o011)


def ask(path, req=b'{"cmd":"list"}\n'):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(path)
    try:
        s.sendall(req)
    except OSError:
        pass  # refused: the error line is still there to read
    out = b""
    try:
        while chunk := s.recv(65536):
            out += chunk
    except ConnectionResetError:
        pass  # the daemon hung up with our request unread; its line came first
    s.close()
    return json.loads(out.decode().splitlines()[0])


def test_a_peer_that_is_not_root_is_refused_even_through_open_modes(tmp_path, daemons):
    rt = Runtime(tmp_path, daemons, {"m": sh_module("exec sleep 1000")})
    sock = str(rt.state / "control.sock")
    assert stat.S_IMODE(os.stat(sock).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(rt.state).st_mode) == 0o700
    # The modes alone keep others out ...
    got = as_user(NOBODY, NOBODY, [], lambda: ask(sock))
    assert "PermissionError" in got["exc"]
    # ... and SO_PEERCRED still does when the modes were opened by mistake.
    traversable(rt.state)
    os.chmod(rt.state, 0o755)
    os.chmod(sock, 0o666)
    got = as_user(NOBODY, NOBODY, [], lambda: ask(sock))
    assert got["ok"]["code"] == 1 and "permission denied" in got["ok"]["error"], got
    assert rt.daemon.wait_for("refused a client (uid 65534")
    # The CLI as that user prints the daemon's reason and fails.
    def cli():
        p = run("list", "--state-dir", str(rt.state))
        return [p.returncode, p.stderr]
    rc, err = as_user(NOBODY, NOBODY, [], cli)["ok"]
    assert rc == 1 and "permission denied" in err, err
    # Root still gets in.
    assert ask(sock)["modules"][0]["name"] == "m"


def test_the_admin_group_may_use_the_socket(tmp_path, daemons):
    group = grp.getgrnam("users")
    config = dict(FAST_CONFIG, control={"adminGroup": "users"})
    rt = Runtime(tmp_path, daemons, {"m": sh_module("exec sleep 1000")}, config=config)
    sock = str(rt.state / "control.sock")
    st = os.stat(sock)
    assert stat.S_IMODE(st.st_mode) == 0o660 and st.st_gid == group.gr_gid
    st = os.stat(rt.state)
    assert stat.S_IMODE(st.st_mode) == 0o710 and st.st_gid == group.gr_gid
    traversable(rt.state)
    # A member by supplementary group, and by primary group.
    got = as_user(NOBODY, NOBODY, [group.gr_gid], lambda: ask(sock))
    assert got["ok"]["modules"][0]["name"] == "m", got
    got = as_user(NOBODY, group.gr_gid, [], lambda: ask(sock))
    assert got["ok"]["modules"][0]["name"] == "m", got
    # Not a member: the state dir's mode keeps it out.
    got = as_user(NOBODY, NOBODY, [], lambda: ask(sock))
    assert "PermissionError" in got["exc"], got
    # The group can reach the socket, not read the store or list the dir.
    got = as_user(NOBODY, NOBODY, [group.gr_gid], lambda: os.listdir(rt.state))
    assert "PermissionError" in got["exc"], got
    # Taking the group out of the config and reloading closes it again.
    rt.config.write_text(json.dumps(FAST_CONFIG))
    rt.daemon.proc.send_signal(1)
    assert rt.daemon.wait_for("only root and the daemon's user may use")
    assert stat.S_IMODE(os.stat(sock).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(rt.state).st_mode) == 0o700


def test_an_unknown_admin_group_is_a_config_error(tmp_path):
    cfg = write_json(tmp_path, "config.json",
                     '{\n  "control": {\n    "adminGroup": "no-such-group-x"\n  }\n}\n')
    r = run("check", "-c", str(cfg))
    assert r.returncode == 2
    assert f"{cfg}:3:19" in r.stderr and "control.adminGroup" in r.stderr, r.stderr
    assert "not found in /etc/group" in r.stderr
    cfg = write_json(tmp_path, "config.json", '{"control": {"adminGroup": "users", "x": 1}}')
    assert run("check", "-c", str(cfg)).returncode == 2


def test_idle_clients_cannot_hold_the_socket(tmp_path, daemons):
    rt = Runtime(tmp_path, daemons, {"m": sh_module("exec sleep 1000")})
    sock = str(rt.state / "control.sock")
    idle = []
    for _ in range(16):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(sock)
        idle.append(s)
    s = idle[0]
    s.sendall(b'{"cmd":')  # half a request, never finished
    time.sleep(0.3)
    # The 17th is told at once (the loop is not waiting on anyone).
    got = ask(sock)
    assert got["code"] == 1 and got["error"].startswith("busy"), got
    r = rt.cli("list")
    assert r.returncode == 1 and "busy" in r.stderr
    # Within TE_CTL_REQ_SECS (10 s) plus the reaper's second they are dropped.
    assert rt.daemon.wait_for("dropped a client that sent no request", timeout=20)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and rt.cli("list").returncode != 0:
        time.sleep(0.2)
    assert rt.cli("list").returncode == 0
    for s in idle:
        s.settimeout(5)
        assert s.recv(100) == b""  # hung up on
        s.close()
    assert rt.daemon.proc.poll() is None


def test_a_client_that_stops_reading_is_dropped(tmp_path, daemons):
    # A follower of a chatty module's log that reads nothing: the answer
    # waits in the daemon (bounded: one batch) and the client goes after
    # TE_CTL_STALL_SECS (30 s); the daemon stays responsive meanwhile.
    spam = "i=0; while :; do i=$((i+1)); echo line-$i-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx; done"
    rt = Runtime(tmp_path, daemons, {"chatty": sh_module(spam)})
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(str(rt.state / "control.sock"))
    s.sendall(b'{"cmd":"logs","module":"chatty","follow":true}\n')
    t0 = time.monotonic()
    while time.monotonic() - t0 < 5:
        assert rt.cli("list").returncode == 0
        time.sleep(0.5)
    assert rt.daemon.wait_for("dropped a client that read none of its answer", timeout=45)
    assert rt.cli("list").returncode == 0
    rss = int(next(l.split()[1] for l in open(f"/proc/{rt.daemon.proc.pid}/status")
                   if l.startswith("VmRSS:")))
    assert rss < 16 * 1024, rss  # KiB: the unread answer did not pile up
    s.close()
