"""A TCP port for a test's server (a Ray head, a jax.distributed coordinator)."""
import random
import socket

#: Ray's default worker ports are 10002-19999 (``ray start --min-worker-port/--max-worker-port``):
#: a head on one of them fails its start ("trying to use a port number ... used by other components")
FIRST = 20_000


def free_port() -> int:
    """A port free now, at or above :data:`FIRST` and below the kernel's ephemeral range, so that
    no other process's bind(0) or outgoing connection is handed it before the server here binds it
    (a bind(0) port released for the server to take could be handed out again in between)."""
    with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
        ephemeral_start = int(f.read().split()[0])
    rng = random.SystemRandom()
    for _ in range(100):
        port = rng.randrange(FIRST, ephemeral_start)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    raise RuntimeError(f"no free port in {FIRST}-{ephemeral_start - 1}")
