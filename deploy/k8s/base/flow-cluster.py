"""Run one Bytewax process of the `eventpulse-flow` StatefulSet, and tell when it must restart.

Bytewax processes form a fixed cluster: each is started with its index (``-i``) and the address
of every process (``-a``). Here the index is the pod's ordinal (``eventpulse-flow-3`` is 3) and the
addresses follow from the StatefulSet's replica count, read from the Kubernetes API (the pod's
service account may only ``get`` that StatefulSet's scale). When KEDA changes the replica count,
the liveness check (``check``) fails in every running process, the kubelet restarts them, and the
whole cluster resumes with the new count from its last recovery snapshot (the recovery directory
is one shared volume, so every partition stays reachable whatever the count).

    python flow-cluster.py run     # exec python -m bytewax.run ... -i I -a A
    python flow-cluster.py check   # exit 1 if the replica count changed or the dataflow API is down
"""

import json
import os
import ssl
import sys
import urllib.request

SERVICE_ACCOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"
STARTED_WITH = "/tmp/flow-processes"


def addresses(statefulset: str, service: str, namespace: str, count: int, port: int) -> str:
    """Bytewax's ``-a``: every process's stable DNS name (headless service), separated by ';'."""
    return ";".join(f"{statefulset}-{i}.{service}.{namespace}.svc.cluster.local:{port}" for i in range(count))


def bytewax_argv(hostname: str, count: int, env: dict[str, str]) -> list[str]:
    """The command line of this pod's process."""
    statefulset, _, ordinal = hostname.rpartition("-")
    if not ordinal.isdigit() or int(ordinal) >= count:
        raise SystemExit(f"{hostname}: ordinal outside the {count} replicas")
    peers = addresses(statefulset, env["FLOW_SERVICE"], env["POD_NAMESPACE"], count, int(env["FLOW_PORT"]))
    return [
        "python", "-m", "bytewax.run", env.get("FLOW_MODULE", "flows.dataflow:flow"),
        "-w", env.get("FLOW_WORKERS", "1"), "-i", ordinal, "-a", peers,
        "-r", env.get("FLOW_RECOVERY_DIR", "/recovery"), "-s", env.get("FLOW_SNAPSHOT_S", "10"), "-b", "0",
    ]  # fmt: skip


def replicas(env: dict[str, str]) -> int:
    """The StatefulSet's desired replica count (its scale subresource)."""
    namespace, name = env["POD_NAMESPACE"], env["FLOW_STATEFULSET"]
    with open(f"{SERVICE_ACCOUNT}/token") as token:
        headers = {"Authorization": f"Bearer {token.read().strip()}"}
    url = f"https://kubernetes.default.svc/apis/apps/v1/namespaces/{namespace}/statefulsets/{name}/scale"
    context = ssl.create_default_context(cafile=f"{SERVICE_ACCOUNT}/ca.crt")
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), context=context, timeout=5) as reply:
        return int(json.load(reply)["spec"]["replicas"])


def main() -> None:
    env = dict(os.environ)
    if sys.argv[1:] == ["run"]:
        count = replicas(env)
        with open(STARTED_WITH, "w") as started:
            started.write(str(count))
        argv = bytewax_argv(env["HOSTNAME"], count, env)
        os.execvp(argv[0], argv)
    if sys.argv[1:] == ["check"]:
        with open(STARTED_WITH) as started:
            if int(started.read()) != replicas(env):
                raise SystemExit("replica count changed: restart to rejoin the new cluster")
        urllib.request.urlopen("http://127.0.0.1:3030/metrics", timeout=3).close()
        return
    raise SystemExit(__doc__)


if __name__ == "__main__":
    main()
