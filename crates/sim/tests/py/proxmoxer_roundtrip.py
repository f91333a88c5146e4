"""A third-party client (proxmoxer) against labwright-sim, unchanged: list nodes,
create a VM, wait for its task, read its config, delete it."""
import sys

from proxmoxer import ProxmoxAPI, ResourceException
from proxmoxer.tools import Tasks

host, port, user, token_name, secret, ca = sys.argv[1:7]
px = ProxmoxAPI(host, port=int(port), user=user, token_name=token_name,
                token_value=secret, verify_ssl=ca, service="PVE")

nodes = px.nodes.get()
assert [n["node"] for n in nodes] == ["proxmox"], nodes
node = nodes[0]["node"]
assert nodes[0]["status"] == "online"

vmid = int(px.cluster.nextid.get())
upid = px.nodes(node).qemu.post(vmid=vmid, name="px-test", memory=1024, cores=1,
                                 scsihw="virtio-scsi-pci", scsi0="local-lvm:4",
                                 net0="virtio,bridge=vmbr0", agent="enabled=1")
assert upid.startswith("UPID:proxmox:"), upid
status = Tasks.blocking_status(px, upid, timeout=30, polling_interval=0.05)
assert status and status["exitstatus"] == "OK", status

cfg = px.nodes(node).qemu(vmid).config.get()
assert cfg["name"] == "px-test", cfg
assert cfg["memory"] == "1024", cfg
assert cfg["scsi0"].startswith(f"local-lvm:vm-{vmid}-disk-0"), cfg

# PVE's refusal reaches proxmoxer as a ResourceException with the 400 errors map.
try:
    px.nodes(node).qemu(vmid).config.put(cores="many")
    raise AssertionError("invalid value accepted")
except ResourceException as e:
    assert e.status_code == 400, e
    assert "cores" in str(e), e

upid = px.nodes(node).qemu(vmid).delete(purge=1)
status = Tasks.blocking_status(px, upid, timeout=30, polling_interval=0.05)
assert status["exitstatus"] == "OK", status

try:
    px.nodes(node).qemu(vmid).config.get()
    raise AssertionError("deleted VM still has a config")
except ResourceException as e:
    assert e.status_code == 500, e
print("proxmoxer round trip OK")
