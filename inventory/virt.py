"""Is this machine a virtual machine? What ``systemd-detect-virt --vm`` answers, from the files it reads.

Running the command cost ~12 ms of every ``agent inventory`` (a fork, an exec and systemd's shared libraries;
bench/inventory_speed.py), for facts the kernel already shows as files. The checks follow systemd's ``detect_vm()``:

- DMI strings (``sys_vendor``, ``board_vendor``, ``product_name``, ``product_version``, ``bios_vendor``) that
  start with a hypervisor's vendor name; "Amazon EC2" only when the SMBIOS "is a VM" bit is not clear (an EC2
  ``.metal`` instance has the vendor string and no hypervisor); the SMBIOS VM bit alone says "a VM" too;
- User Mode Linux (``vendor_id`` in /proc/cpuinfo);
- Xen: ``/proc/xen`` (a guest), unless ``/proc/xen/capabilities`` says ``control_d`` (dom0 is the host);
- the CPU's ``hypervisor`` flag (CPUID leaf 1, ECX bit 31, as /proc/cpuinfo shows it): any hypervisor;
- ``/sys/hypervisor/type``; the device tree's ``hypervisor/compatible``, PowerVM's ``ibm,partition-name``
  and QEMU's pseries machine; z/VM or KVM in /proc/sysinfo.

Containers are not looked for: ``--vm`` leaves them out. Everything goes through the host seam, so a recorded
fixture tree answers for the machine it was recorded on.
"""

from __future__ import annotations

from common.host import Host

DMI = "/sys/class/dmi/id"
DMI_FILES = ("sys_vendor", "board_vendor", "product_name", "product_version", "bios_vendor")
#: systemd's dmi_vendor_table: the start of a DMI string -> what systemd-detect-virt prints.
DMI_VENDORS = (
    ("KVM", "kvm"), ("OpenStack", "kvm"), ("KubeVirt", "kvm"), ("Amazon EC2", "amazon"), ("QEMU", "qemu"),
    ("VMware", "vmware"), ("VMW", "vmware"), ("innotek GmbH", "oracle"), ("VirtualBox", "oracle"),
    ("Oracle Corporation", "oracle"), ("Xen", "xen"), ("Bochs", "bochs"), ("Parallels", "parallels"),
    ("BHYVE", "bhyve"), ("Hyper-V", "microsoft"), ("Apple Virtualization", "apple"),
    ("Google Compute Engine", "google"),
)
#: SMBIOS type 0 (BIOS information) as the kernel exports it; byte 0x13 bit 4 is "this is a virtual machine".
SMBIOS_BIOS = "/sys/firmware/dmi/entries/0-0/raw"


def dmi_vendor(host: Host) -> str:
    """systemd's name of the hypervisor that DMI names, or ""."""
    for name in DMI_FILES:
        value = host.read_attr(f"{DMI}/{name}")
        if value:
            for prefix, kind in DMI_VENDORS:
                if value.startswith(prefix):
                    return kind
    return ""


def smbios_vm_bit(host: Host) -> bool | None:
    """The SMBIOS "virtual machine" characteristic: True set, False clear, None when the table says nothing."""
    raw = host.read_bytes(SMBIOS_BIOS)
    if raw is None or len(raw) < 20 or raw[1] < 20:
        return None
    return bool(raw[0x13] & (1 << 4))


def _cpuinfo(host: Host) -> tuple[str, bool]:
    """(vendor_id, whether the first CPU's flags have ``hypervisor``) from /proc/cpuinfo."""
    vendor, hypervisor, seen_flags = "", False, False
    for line in (host.read_text("/proc/cpuinfo") or "").splitlines():
        if not vendor and line.startswith("vendor_id"):
            vendor = line.partition(":")[2].strip()
        elif not seen_flags and line.startswith("flags"):
            seen_flags, hypervisor = True, "hypervisor" in line.partition(":")[2].split()
        if vendor and seen_flags:
            break
    return vendor, hypervisor


def _device_tree(host: Host) -> bool:
    if host.exists("/proc/device-tree/hypervisor/compatible"):
        return True
    if host.exists("/proc/device-tree/ibm,partition-name") and not host.exists("/proc/device-tree/hmc-managed?"):
        return True
    compatible = host.read_bytes("/proc/device-tree/compatible") or b""
    return b"qemu,pseries" in compatible


def detect_vm(host: Host) -> bool:
    """True when ``systemd-detect-virt --vm`` would print something other than ``none``."""
    vendor = dmi_vendor(host)
    if vendor == "amazon":
        return smbios_vm_bit(host) is not False
    if vendor:
        return True
    cpu_vendor, hypervisor = _cpuinfo(host)
    if cpu_vendor == "User Mode Linux":
        return True
    if host.exists("/proc/xen"):
        dom0 = "control_d" in (host.read_text("/proc/xen/capabilities") or "")
        return not dom0  # dom0 sees Xen's own CPUID leaf: it is the host, as systemd reports it
    if hypervisor or smbios_vm_bit(host):
        return True
    if host.read_attr("/sys/hypervisor/type"):
        return True
    if _device_tree(host):
        return True
    sysinfo = host.read_text("/proc/sysinfo") or ""
    return "VM00 Control Program" in sysinfo
