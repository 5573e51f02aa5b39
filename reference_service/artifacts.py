"""What a real installation leaves for the user, made by the reference install: the install-config, the
kubeadmin password, a kubeconfig, the metadata and the hosts' pointer Ignition configs.

The real service hands these out once a cluster is installing or installed (``downloads/credentials``,
``downloads/files``, ``credentials``); clients fetch them at the end of every session (``aicli download
kubeconfig``). No cluster comes up here, so they are made when the installation starts, as plausible, valid
files: a kubeconfig whose server is ``https://api.<name>.<domain>:6443`` with a CA generated for it and an
admin client certificate it signed (openssl, run without a shell), a generated password, and the
install-config the installer would have been given (without the pull secret, which this service never keeps).
"""

from __future__ import annotations

import base64
import json
import secrets
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import yaml

#: How long the generated certificates are valid, as the installer's admin kubeconfig (10 years).
CERT_DAYS = 3650


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def kubeconfig(name: str, domain: str) -> str:
    """An admin kubeconfig for ``api.<name>.<domain>`` with a freshly generated CA and client certificate."""
    server = f"api.{name}.{domain}"
    with tempfile.TemporaryDirectory(prefix="kubeconfig-") as tmp:
        d = Path(tmp)
        _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                 "-keyout", "ca.key", "-out", "ca.crt", "-days", str(CERT_DAYS),
                 "-subj", "/OU=openshift/CN=kube-apiserver-lb-signer", "-addext", f"subjectAltName=DNS:{server}",
                 cwd=d)
        _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                 "-keyout", "admin.key", "-out", "admin.csr", "-subj", "/O=system:masters/CN=system:admin", cwd=d)
        _openssl("x509", "-req", "-in", "admin.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
                 "-out", "admin.crt", "-days", str(CERT_DAYS), cwd=d)

        def b64(file: str) -> str:
            return base64.b64encode((d / file).read_bytes()).decode()

        doc = {
            "apiVersion": "v1", "kind": "Config", "preferences": {}, "current-context": "admin",
            "clusters": [{"name": name, "cluster": {"server": f"https://{server}:6443",
                                                    "certificate-authority-data": b64("ca.crt")}}],
            "contexts": [{"name": "admin", "context": {"cluster": name, "user": "admin"}}],
            "users": [{"name": "admin", "user": {"client-certificate-data": b64("admin.crt"),
                                                 "client-key-data": b64("admin.key")}}],
        }
    return str(yaml.safe_dump(doc, sort_keys=False))


def kubeadmin_password() -> str:
    """Like the installer's: four groups of five letters and digits joined by dashes."""
    alphabet = "23456789abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ"
    return "-".join("".join(secrets.choice(alphabet) for _ in range(5)) for _ in range(4))


def _cidrs(cluster: dict[str, Any], key: str) -> list[dict[str, Any]]:
    return [e for e in cluster.get(key) or [] if isinstance(e, dict)]


def install_config(cluster: dict[str, Any], hosts: list[dict[str, Any]]) -> str:
    """The install-config.yaml the installer gets for this cluster, with the user's overrides merged in."""
    masters = sum(1 for h in hosts if h.get("role") == "master") or int(cluster.get("control_plane_count") or 3)
    workers = sum(1 for h in hosts if h.get("role") == "worker")
    api = [str(v.get("ip")) for v in _cidrs(cluster, "api_vips")]
    ingress = [str(v.get("ip")) for v in _cidrs(cluster, "ingress_vips")]
    platform: dict[str, Any] = {"baremetal": {"apiVIPs": api, "ingressVIPs": ingress}} if api else {"none": {}}
    doc: dict[str, Any] = {
        "apiVersion": "v1", "baseDomain": cluster.get("base_dns_domain", ""),
        "metadata": {"name": cluster.get("name", "")},
        "compute": [{"name": "worker", "replicas": workers, "hyperthreading": "Enabled"}],
        "controlPlane": {"name": "master", "replicas": masters, "hyperthreading": "Enabled"},
        "networking": {
            "networkType": cluster.get("network_type") or "OVNKubernetes",
            "clusterNetwork": [{"cidr": c.get("cidr"), "hostPrefix": c.get("host_prefix")}
                               for c in _cidrs(cluster, "cluster_networks")],
            "machineNetwork": [{"cidr": c.get("cidr")} for c in _cidrs(cluster, "machine_networks")],
            "serviceNetwork": [c.get("cidr") for c in _cidrs(cluster, "service_networks")],
        },
        "platform": platform,
        "publish": "External",
    }
    if cluster.get("ssh_public_key"):
        doc["sshKey"] = cluster["ssh_public_key"]
    overrides = cluster.get("install_config_overrides")
    if overrides:
        _merge(doc, json.loads(overrides))
    return str(yaml.safe_dump(doc, sort_keys=False))


def _merge(into: dict[str, Any], extra: dict[str, Any]) -> None:
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value


def key(cluster_id: str) -> str:
    """Where the store keeps a cluster's files (a blob: JSON of ``make``'s answer)."""
    return f"artifacts/{cluster_id}"


def make(cluster: dict[str, Any], hosts: list[dict[str, Any]]) -> dict[str, str]:
    """The files of an installation, by the names ``downloads/files`` and ``downloads/credentials`` take."""
    name, domain = str(cluster.get("name") or "cluster"), str(cluster.get("base_dns_domain") or "local")
    config = kubeconfig(name, domain)
    metadata = {"clusterName": name, "clusterID": cluster.get("id"), "infraID": f"{name}-{secrets.token_hex(3)}"}
    ca = str(yaml.safe_load(config)["clusters"][0]["cluster"]["certificate-authority-data"])
    installing = install_config(cluster, hosts)
    return {"kubeconfig": config, "kubeconfig-noingress": config, "kubeadmin-password": kubeadmin_password(),
            "install-config.yaml": installing, "metadata.json": json.dumps(metadata),
            "master.ign": pointer_ignition(name, domain, "master", ca),
            "worker.ign": pointer_ignition(name, domain, "worker", ca),
            "bootstrap.ign": json.dumps({"ignition": {"version": "3.2.0"}, "storage": {"files": [
                {"path": "/opt/openshift/install-config.yaml", "mode": 0o600, "overwrite": True,
                 "contents": {"source": "data:text/plain;charset=utf-8;base64,"
                                        + base64.b64encode(installing.encode()).decode()}}]}})}


def pointer_ignition(name: str, domain: str, role: str, ca_b64: str) -> str:
    """The installer's pointer Ignition for ``role``: merge the config the machine config server serves on
    ``api-int.<name>.<domain>:22623``, trusting the cluster's CA."""
    return json.dumps({"ignition": {
        "config": {"merge": [{"source": f"https://api-int.{name}.{domain}:22623/config/{role}"}]},
        "security": {"tls": {"certificateAuthorities": [
            {"source": f"data:text/plain;charset=utf-8;base64,{ca_b64}"}]}},
        "version": "3.2.0"}})
