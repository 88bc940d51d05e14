"""Built-in probes: rates from fake counters, pure choosers, and real polls on this machine."""

from __future__ import annotations

import logging
import math
import subprocess
import sys
import uuid
from collections import namedtuple
from collections.abc import Iterator, Mapping
from dataclasses import replace
from typing import Any, NamedTuple, cast

import psutil
import pytest

from gsmon.agent import Monitor
from gsmon.agent.config import (
    ConfigError,
    CpuProbe,
    DiskIOProbe,
    DiskProbe,
    NetworkProbe,
    ProbesConfig,
    ProcessCheck,
    SensorsProbe,
    parse_agent_config,
)
from gsmon.agent.probes import CounterRates, RateTracker, RegisteredProbes, register_probes
from gsmon.agent.probes.cpu import CpuUsage, busy_and_total, register_cpu
from gsmon.agent.probes.disk import choose_mounts
from gsmon.agent.probes.diskio import choose_disks, register_disk_io
from gsmon.agent.probes.labels import label, mount_label, unique
from gsmon.agent.probes.network import choose_interfaces, register_network
from gsmon.agent.probes.processes import ProcessEntry, ProcessScanner, ProcessUsage, matches
from gsmon.agent.probes.sensors import hardware_threshold, register_sensors
from gsmon.agent.thresholds import Threshold, ThresholdRule
from gsmon.common import names as naming
from gsmon.common.alerts import Alert, GreenAlert, OrangeAlert, RedAlert


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


# ----------------------------------------------------------------------
# Rates
# ----------------------------------------------------------------------


class TestRateTracker:
    def test_first_sample_has_no_rate(self) -> None:
        """Nothing to compare the first sample with."""
        assert RateTracker().rate("k", 100, now=0.0) is None

    def test_steady_rate(self) -> None:
        """Increase over elapsed monotonic time."""
        rates = RateTracker()
        rates.rate("k", 1_000, now=10.0)
        assert rates.rate("k", 3_000, now=12.0) == 1000.0
        assert rates.rate("k", 3_000, now=13.0) == 0.0
        assert rates.rate("k", 3_500, now=14.0) == 500.0

    def test_wrap_or_reset_gives_no_negative_rate(self) -> None:
        """A counter going down gives no rate once, then counts from its new value."""
        rates = RateTracker()
        rates.rate("k", 4_000_000_000, now=0.0)
        assert rates.rate("k", 100, now=1.0) is None  # 32-bit wrap, or a driver reload
        assert rates.rate("k", 600, now=2.0) == 500.0

    def test_samples_too_close_keep_the_older_baseline(self) -> None:
        """Under min_interval_s: no rate, and the next rate spans from the kept sample."""
        rates = RateTracker(min_interval_s=0.5)
        rates.rate("k", 0, now=0.0)
        assert rates.rate("k", 10, now=0.1) is None
        assert rates.rate("k", 100, now=1.0) == 100.0

    def test_same_instant_twice(self) -> None:
        """Zero elapsed time never divides by zero, even with no minimum interval."""
        rates = RateTracker(min_interval_s=0.0)
        rates.rate("k", 0, now=5.0)
        assert rates.rate("k", 10, now=5.0) is None
        assert rates.rate("k", 20, now=6.0) == 20.0

    def test_time_going_backwards_restarts(self) -> None:
        """A clock that went back (mixed clocks) restarts the key rather than inventing a rate."""
        rates = RateTracker()
        rates.rate("k", 0, now=10.0)
        assert rates.rate("k", 50, now=5.0) is None
        assert rates.rate("k", 150, now=6.0) == 100.0

    def test_keys_are_independent(self) -> None:
        """Each key has its own baseline."""
        rates = RateTracker()
        rates.rate("a", 0, now=0.0)
        assert rates.rate("b", 7, now=1.0) is None
        assert rates.rate("a", 10, now=1.0) == 10.0

    def test_forget_and_retain(self) -> None:
        """Forgotten keys start over; retain drops every other key."""
        rates = RateTracker()
        for key in ("a", "b", "c"):
            rates.rate(key, 0, now=0.0)
        rates.forget("a")
        assert rates.rate("a", 5, now=1.0) is None
        rates.retain(["b"])
        assert len(rates) == 1
        assert rates.rate("b", 5, now=1.0) == 5.0

    def test_negative_min_interval_is_refused(self) -> None:
        """A negative window makes no sense."""
        with pytest.raises(ValueError, match="min_interval_s"):
            RateTracker(min_interval_s=-1)


Counters = namedtuple("Counters", "rx tx")


class TestCounterRates:
    def test_rates_per_device_and_field(self) -> None:
        """One value per device and field, devices first; a device that vanished is None."""
        rates = CounterRates(["eth0", "wlan0"], {"rx": "rx_bytes_per_s", "tx": "tx_bytes_per_s"})
        assert rates.point_names(["eth0", "wlan0"]) == (
            "eth0_rx_bytes_per_s",
            "eth0_tx_bytes_per_s",
            "wlan0_rx_bytes_per_s",
            "wlan0_tx_bytes_per_s",
        )
        assert rates.sample({"eth0": Counters(0, 0), "wlan0": Counters(0, 0)}, 0.0) == (None,) * 4
        assert rates.sample({"eth0": Counters(2000, 10), "wlan0": Counters(5, 5)}, 2.0) == (1000.0, 5.0, 2.5, 2.5)
        assert rates.sample({"eth0": Counters(4000, 10)}, 4.0) == (1000.0, 0.0, None, None)
        # wlan0 came back with restarted counters: a first sample again, never a negative rate.
        assert rates.sample({"eth0": Counters(4000, 10), "wlan0": Counters(1, 1)}, 6.0)[2:] == (None, None)


# ----------------------------------------------------------------------
# CPU
# ----------------------------------------------------------------------


class Times(NamedTuple):
    """A Linux-like scputimes."""

    user: float
    nice: float
    system: float
    idle: float
    iowait: float
    guest: float = 0.0
    guest_nice: float = 0.0


def times(busy: float, idle: float, iowait: float = 0.0, guest: float = 0.0) -> Times:
    # Linux counts guest time inside user time as well.
    return Times(user=busy, nice=0.0, system=0.0, idle=idle, iowait=iowait, guest=guest)


class TestCpuUsage:
    def test_busy_and_total(self) -> None:
        """Guest time (already inside user time) is not counted twice; iowait is idle."""
        assert busy_and_total(times(busy=30, idle=60, iowait=10, guest=5)) == (30.0, 100.0)

    def test_percentages_from_deltas(self) -> None:
        """Busy share of each core and of all cores since the previous sample."""
        usage = CpuUsage(cores=2)
        assert usage.sample([times(0, 0), times(0, 0)], now=0.0) == (None, [None, None])
        total, per_core = usage.sample([times(50, 50), times(0, 100)], now=1.0)
        assert per_core == [50.0, 0.0]
        assert total == 25.0

    def test_short_window_keeps_the_baseline(self) -> None:
        """A sample too soon after the previous one gives nothing and measures from the older one next."""
        usage = CpuUsage(cores=1, min_interval_s=0.25)
        usage.sample([times(0, 0)], now=0.0)
        assert usage.sample([times(1, 0)], now=0.01) == (None, [None])
        assert usage.sample([times(10, 30)], now=1.0) == (25.0, [25.0])

    def test_core_count_change_restarts(self) -> None:
        """A core going offline restarts the baseline; the point list keeps its registered length."""
        usage = CpuUsage(cores=2)
        usage.sample([times(0, 0), times(0, 0)], now=0.0)
        assert usage.sample([times(1, 1)], now=1.0) == (None, [None, None])
        assert usage.sample([times(2, 2)], now=2.0) == (50.0, [50.0, None])

    def test_idle_core_and_clamping(self) -> None:
        """No elapsed CPU time gives None; rounding noise never leaves 0-100."""
        usage = CpuUsage(cores=2)
        usage.sample([times(5, 5), times(0, 0)], now=0.0)
        total, per_core = usage.sample([times(5, 5), times(10, -1e-9)], now=1.0)
        assert per_core == [None, 100.0]
        assert total == 100.0

    def test_registered_cpu_probe_with_fake_counters(self) -> None:
        """The CPU monitor function returns total then each core, primed at registration."""
        clock = FakeClock()
        samples = iter([[times(0, 0), times(0, 0)], [times(30, 70), times(90, 10)]])
        probes = RegisteredProbes(Monitor())
        register_cpu(probes, CpuProbe(), read=lambda: next(samples), clock=clock)
        ((names, poll),) = probes.functions.items()
        assert names == ("cpu_total_percent", "cpu0_percent", "cpu1_percent")
        clock.advance(5)
        assert poll() == (60.0, 30.0, 90.0)

    def test_total_only(self) -> None:
        """per_core = false gives one point, a plain value."""
        samples = iter([[times(0, 0)] * 4, [times(1, 3)] * 4])
        clock = FakeClock()
        probes = RegisteredProbes(Monitor())
        register_cpu(probes, CpuProbe(per_core=False), read=lambda: next(samples), clock=clock)
        clock.advance(5)
        assert probes.points == ["cpu_total_percent"]
        assert probes.functions[("cpu_total_percent",)]() == 25.0


# ----------------------------------------------------------------------
# Network and disk I/O with fake counters
# ----------------------------------------------------------------------

NetCounters = namedtuple("NetCounters", "bytes_recv bytes_sent errin errout dropin dropout")
DiskCounters = namedtuple("DiskCounters", "read_bytes write_bytes read_count write_count")


class TestNetworkRates:
    def test_rates_wrap_and_vanished_interface(self) -> None:
        """Bytes, errors and drops per second; a wrap gives None, never a negative rate."""
        clock = FakeClock()
        readings: list[Mapping[str, Any]] = [
            {"eth0": NetCounters(0, 0, 0, 0, 0, 0), "lo": NetCounters(0, 0, 0, 0, 0, 0)},
            {"eth0": NetCounters(10_000, 2_000, 10, 0, 4, 0)},
            {"eth0": NetCounters(5, 4_000, 10, 0, 4, 0)},
        ]
        feed = iter(readings)
        probes = RegisteredProbes(Monitor())
        register_network(probes, NetworkProbe(), read=lambda: next(feed), clock=clock)
        ((names, poll),) = probes.functions.items()
        assert names == (
            "eth0_rx_bytes_per_s",
            "eth0_tx_bytes_per_s",
            "eth0_rx_errors_per_s",
            "eth0_tx_errors_per_s",
            "eth0_rx_drops_per_s",
            "eth0_tx_drops_per_s",
        )  # lo is ignored by default
        clock.advance(10)
        assert poll() == (1000.0, 200.0, 1.0, 0.0, 0.4, 0.0)
        clock.advance(10)
        assert poll() == (None, 200.0, 0.0, 0.0, 0.0, 0.0)

    def test_interface_gone_later(self) -> None:
        """An interface that disappears after registration reads None."""
        clock = FakeClock()
        feed = iter([{"eth1": NetCounters(0, 0, 0, 0, 0, 0)}, {}])
        probes = RegisteredProbes(Monitor())
        register_network(probes, NetworkProbe(), read=lambda: next(feed), clock=clock)
        clock.advance(1)
        assert probes.functions[next(iter(probes.functions))]() == (None,) * 6

    def test_choose_interfaces(self) -> None:
        """Configured interfaces win; otherwise all but the ignore globs."""
        available = ["lo", "eth0", "docker0", "veth12ab"]
        assert choose_interfaces(available, NetworkProbe()) == ["docker0", "eth0", "veth12ab"]
        assert choose_interfaces(available, NetworkProbe(ignore=("lo", "veth*", "docker*"))) == ["eth0"]
        assert choose_interfaces(available, NetworkProbe(interfaces=("wlan0",))) == ["wlan0"]


class TestDiskIO:
    def test_rates_with_fake_counters(self) -> None:
        """Read/write bytes and operations per second per disk."""
        clock = FakeClock()
        feed = iter([{"sda": DiskCounters(0, 0, 0, 0)}, {"sda": DiskCounters(4096, 8192, 1, 2)}])
        probes = RegisteredProbes(Monitor())
        register_disk_io(probes, DiskIOProbe(), read=lambda: next(feed), clock=clock)
        ((names, poll),) = probes.functions.items()
        assert names == ("sda_read_bytes_per_s", "sda_write_bytes_per_s", "sda_read_ops_per_s", "sda_write_ops_per_s")
        clock.advance(2)
        assert poll() == (2048.0, 4096.0, 0.5, 1.0)

    def test_no_disk_statistics(self, caplog: pytest.LogCaptureFixture) -> None:
        """Where psutil has no disk statistics (None), nothing is registered."""
        probes = RegisteredProbes(Monitor())
        with caplog.at_level(logging.DEBUG, "gsmon.agent.probes"):
            register_disk_io(probes, DiskIOProbe(), read=lambda: None)
        assert probes.points == []
        assert "the OS reports no disk to watch" in caplog.text

    def test_choose_disks(self) -> None:
        """Whole disks only (where known), minus loop/RAM devices; configured disks win."""
        available = ["sda", "sda1", "sda2", "loop0", "zram0", "nvme0n1", "nvme0n1p1"]
        whole = {"sda", "loop0", "zram0", "nvme0n1"}
        assert choose_disks(available, DiskIOProbe(), whole) == ["nvme0n1", "sda"]
        assert choose_disks(available, DiskIOProbe(), None) == ["nvme0n1", "nvme0n1p1", "sda", "sda1", "sda2"]
        assert choose_disks(available, DiskIOProbe(disks=("sdb",)), whole) == ["sdb"]


# ----------------------------------------------------------------------
# Disk usage, labels
# ----------------------------------------------------------------------


class Part(NamedTuple):
    device: str
    mountpoint: str
    fstype: str


class TestDiskUsage:
    def test_choose_mounts(self) -> None:
        """Physical mounts, one per device, minus ignored mount points and file-system types."""
        partitions = [
            Part("/dev/vda", "/run/netns", "ext4"),  # a bind mount of / (ignored glob, and same device)
            Part("/dev/vda", "/", "ext4"),
            Part("/dev/vdb1", "/var/log", "xfs"),
            Part("/dev/vdb1", "/srv/logs", "xfs"),  # the same file system again
            Part("/dev/loop3", "/snap/core/1", "squashfs"),
            Part("/dev/sr0", "/media/cd", "iso9660"),
        ]
        assert choose_mounts(partitions, DiskProbe()) == ["/", "/var/log"]
        assert choose_mounts(partitions, DiskProbe(mounts=("/data",))) == ["/data"]
        assert choose_mounts(partitions, DiskProbe(ignore_mounts=(), ignore_fstypes=())) == [
            "/",
            "/media/cd",
            "/snap/core/1",
            "/var/log",
        ]

    @pytest.mark.parametrize(
        ("mountpoint", "expected"),
        [
            ("/", "root"),
            ("/var/log", "var_log"),
            ("/media/My Disk", "media_My_Disk"),
            ("C:\\", "C:"),
            ("/mnt/a\nb", "mnt_a_b"),
            ("/data/", "data"),
        ],
    )
    def test_mount_labels(self, mountpoint: str, expected: str) -> None:
        """Mount points become valid, readable name prefixes."""
        assert mount_label(mountpoint) == expected
        assert naming.check_name(f"{expected}_used_percent")

    def test_labels_and_unique(self) -> None:
        """Anything unsafe becomes _, empty becomes the fallback, repeats get a number."""
        assert label("coretemp_Package id 0") == "coretemp_Package_id_0"
        assert label("//") == "unnamed"
        assert label("x" * 500).startswith("x")
        assert len(label("x" * 500)) <= naming.MAX_NAME_CHARS - 32
        assert unique(["var_log", "var_log", "a", "var_log"]) == ["var_log", "var_log_2", "a", "var_log_3"]


# ----------------------------------------------------------------------
# Sensors
# ----------------------------------------------------------------------

Temp = namedtuple("Temp", "label current high critical")
Fan = namedtuple("Fan", "label current")


class TestSensors:
    def readings(self, kind: str) -> Mapping[str, list[Any]]:
        if kind == "temperatures":
            return {
                "coretemp": [Temp("Package id 0", 45.0, 80.0, 100.0), Temp("Core 0", 44.0, 80.0, 100.0)],
                "acpitz": [Temp("", 27.8, None, None)],
                "nvme": [Temp("Composite", 38.85, 84.85, 84.85)],
            }
        return {"thinkpad": [Fan("", 2100)]}

    def test_points_values_and_hardware_thresholds(self) -> None:
        """Temperatures and fans get unit-suffixed names; chip limits become default thresholds."""
        probes = RegisteredProbes(Monitor())
        register_sensors(probes, SensorsProbe(), read=self.readings)
        assert probes.points == [
            "coretemp_Package_id_0_temp_c",
            "coretemp_Core_0_temp_c",
            "acpitz_0_temp_c",
            "nvme_Composite_temp_c",
            "thinkpad_0_fan_rpm",
        ]
        assert {probes.parents[p] for p in probes.points} == {"Sensors"}
        temps = probes.functions[tuple(probes.points[:4])]()
        assert temps == (45.0, 44.0, 27.8, 38.9)
        assert probes.functions[("thinkpad_0_fan_rpm",)]() == 2100
        assert probes.default_thresholds == [
            Threshold("Sensors/coretemp_Package_id_0_temp_c", orange=80.0, red=100.0, hysteresis=2.0),
            Threshold("Sensors/coretemp_Core_0_temp_c", orange=80.0, red=100.0, hysteresis=2.0),
            Threshold("Sensors/nvme_Composite_temp_c", red=84.85, hysteresis=2.0),
        ]

    def test_host_without_sensors_registers_nothing(self, caplog: pytest.LogCaptureFixture) -> None:
        """No sensors reported: no points, one debug line per kind."""
        probes = RegisteredProbes(Monitor())
        with caplog.at_level(logging.DEBUG, "gsmon.agent.probes"):
            register_sensors(probes, SensorsProbe(), read=lambda kind: {})
        assert probes.points == []
        assert "this host reports no temperatures; none registered" in caplog.text
        assert "this host reports no fans; none registered" in caplog.text

    def test_switches(self) -> None:
        """temperatures = false / fans = false leave those out."""
        probes = RegisteredProbes(Monitor())
        register_sensors(probes, SensorsProbe(fans=False), read=self.readings)
        assert not any(p.endswith("_fan_rpm") for p in probes.points)

    def test_sensor_vanishing_reads_none(self) -> None:
        """A sensor that disappears after registration reads None, not an error."""
        probes = RegisteredProbes(Monitor())
        calls = iter([self.readings("temperatures"), {"coretemp": [Temp("Package id 0", 50.0, None, None)]}])
        register_sensors(probes, SensorsProbe(fans=False), read=lambda kind: next(calls))
        assert probes.functions[tuple(probes.points)]() == (50.0, None, None, None)

    @pytest.mark.parametrize(
        ("high", "critical", "expected"),
        [
            (80.0, 100.0, (80.0, 100.0)),
            (None, 95.0, (None, 95.0)),
            (85.0, None, (85.0, None)),
            (84.85, 84.85, (None, 84.85)),
            (0.0, -273.0, None),
            (65535.0, None, None),
            (math.nan, math.inf, None),
        ],
    )
    def test_hardware_threshold(self, high: float | None, critical: float | None, expected: Any) -> None:
        """Only plausible chip limits become thresholds."""
        threshold = hardware_threshold("Sensors/x_temp_c", high, critical)
        if expected is None:
            assert threshold is None
        else:
            assert threshold is not None
            assert (threshold.orange, threshold.red) == expected

    def test_labels_with_glob_characters_still_match(self) -> None:
        """A sensor label with [ ] gets a threshold that matches its own point."""
        probes = RegisteredProbes(Monitor())
        register_sensors(probes, SensorsProbe(fans=False), read=lambda kind: {"chip": [Temp("T[1]", 90.0, 80.0, 95.0)]})
        rule = ThresholdRule(probes.default_thresholds)
        assert rule.apply(probes.path("chip_T[1]_temp_c"), 90.0) is OrangeAlert


# ----------------------------------------------------------------------
# Process checks
# ----------------------------------------------------------------------

CpuTimes = namedtuple("CpuTimes", "user system")
MemInfo = namedtuple("MemInfo", "rss")


class FakeProcess:
    """Stands in for psutil.Process: as_dict returns made-up values or raises."""

    def __init__(self, pid: int, cpu_s: float = 0.0, rss: int = 1000, error: Exception | None = None) -> None:
        self.pid = pid
        self.cpu_s = cpu_s
        self.rss = rss
        self.error = error

    def as_dict(self, attrs: list[str]) -> dict[str, Any]:
        if self.error is not None:
            raise self.error
        return {"cpu_times": CpuTimes(self.cpu_s, 0.0), "memory_info": MemInfo(self.rss), "create_time": 1.0}


class FakeScanner:
    def __init__(self, processes: list[tuple[FakeProcess, str, str]]) -> None:
        self.processes = processes

    def entries(self, now: float) -> list[ProcessEntry]:
        return [ProcessEntry(cast(psutil.Process, p), name, cmd) for p, name, cmd in self.processes]


class TestProcessChecks:
    def test_matching(self) -> None:
        """The name exactly, or a substring of the command line."""
        assert matches("gpsd", "gpsd", "/usr/sbin/gpsd -N")
        assert matches("-m tracker", "python3", "python3 -m tracker --live")
        assert not matches("gps", "gpsd", "")
        assert not matches("tracker", "python3", "")

    def test_counts_cpu_and_rss_over_matching_processes(self) -> None:
        """All matching processes add up; CPU is a rate of CPU seconds (100 = one core)."""
        first, second = FakeProcess(10, cpu_s=1.0, rss=100), FakeProcess(11, cpu_s=5.0, rss=50)
        scanner = FakeScanner([(first, "gpsd", "gpsd"), (second, "gpsd", "gpsd -N"), (FakeProcess(12), "sshd", "")])
        usage = ProcessUsage(ProcessCheck("gpsd", "gpsd"), cast(ProcessScanner, scanner))
        assert usage.poll(0.0) == (GreenAlert(2), None, 150)
        first.cpu_s, second.cpu_s = 3.0, 6.0
        assert usage.poll(10.0) == (GreenAlert(2), 30.0, 150)

    def test_not_running_is_red(self) -> None:
        """No matching process: Red with a count of 0, CPU and memory unknown."""
        usage = ProcessUsage(ProcessCheck("gpsd", "gpsd"), cast(ProcessScanner, FakeScanner([])))
        assert usage.poll(0.0) == (RedAlert(0), None, None)

    @pytest.mark.parametrize(
        ("error", "running"),
        [
            (psutil.NoSuchProcess(10), 0),  # ended after the scan
            (psutil.ZombieProcess(10), 0),  # a zombie is not running
            (psutil.AccessDenied(10), 1),  # running, but not ours to read
        ],
    )
    def test_psutil_errors_per_process(self, error: Exception, running: int) -> None:
        """Each psutil error is handled for that process alone."""
        scanner = FakeScanner([(FakeProcess(10, error=error), "gpsd", ""), (FakeProcess(11, rss=7), "gpsd", "")])
        alert, _, rss = ProcessUsage(ProcessCheck("gpsd", "gpsd"), cast(ProcessScanner, scanner)).poll(0.0)
        assert alert == GreenAlert(1 + running)
        assert rss == 7

    def test_scanner_caches_and_excludes_itself(self) -> None:
        """One scan serves every check for max_age_s; the agent's own process never matches."""
        scanner = ProcessScanner(max_age_s=1.0)
        first = scanner.entries(now=100.0)
        assert scanner.entries(now=100.5) is first
        assert scanner.entries(now=101.5) is not first
        assert psutil.Process().pid not in {entry.process.pid for entry in first}

    @pytest.fixture
    def sleeper(self) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
        """A real child process with a unique marker in its command line."""
        marker = f"gsmon-test-{uuid.uuid4().hex}"
        # It waits on its stdin, so it ends with the test even if kill() were never reached.
        with subprocess.Popen(
            [sys.executable, "-c", "import sys; sys.stdin.read()", marker], stdin=subprocess.PIPE
        ) as child:
            try:
                yield child, marker
            finally:
                child.kill()
                child.wait(timeout=10)

    def test_real_process_running_then_gone(self, sleeper: tuple[subprocess.Popen[bytes], str]) -> None:
        """Green while the child runs (with its RSS), Red once it has been killed."""
        child, marker = sleeper
        config = ProbesConfig(processes=(ProcessCheck("sleeper", marker, dt_s=1.0),))
        probes = register_probes(Monitor(), _only_processes(config))
        poll = probes.functions[("sleeper", "sleeper_cpu_percent", "sleeper_rss_bytes")]
        alert, cpu, rss = poll()
        assert alert == GreenAlert(1)
        assert cpu is None or cpu >= 0.0
        assert isinstance(rss, int)
        assert rss > 0
        child.kill()
        child.wait(timeout=10)
        assert poll() == (RedAlert(0), None, None)

    def test_name_clash_is_a_config_error(self) -> None:
        """A process check named like another point names the config key."""
        config = _only_processes(ProbesConfig(processes=(ProcessCheck("uptime_s", "x"),)))
        mon = Monitor()
        mon.register_parent("uptime_s")
        with pytest.raises(ConfigError) as caught:
            register_probes(mon, config, source="/etc/gsmon/agent.toml")
        message = str(caught.value)
        assert message.startswith(
            "/etc/gsmon/agent.toml: probes.process[0].name: expected a point name not used elsewhere in this agent, "
            "got 'uptime_s': "
        )
        assert isinstance(caught.value.__cause__, ValueError)


def _only_processes(config: ProbesConfig) -> ProbesConfig:
    """Every family switched off, the process checks kept."""
    changes = {
        family: replace(getattr(config, family), enabled=False)
        for family in ("cpu", "load", "memory", "swap", "disk", "disk_io", "network", "sensors", "uptime")
    }
    return replace(config, **changes)


# ----------------------------------------------------------------------
# Every family, for real, on this machine
# ----------------------------------------------------------------------

UNIT_SUFFIXES = ("_percent", "_bytes", "_per_s", "min", "_s", "_c", "_rpm")


def _values(result: Any, count: int) -> tuple[Any, ...]:
    return tuple(result) if count > 1 else (result,)


class TestOnThisMachine:
    @pytest.fixture
    def polled(self) -> tuple[RegisteredProbes, dict[str, Any], Monitor]:
        """Every default family registered on a real Monitor, each function polled once."""
        config = parse_agent_config("[[probes.process]]\nname = 'no_such'\nmatch = 'no-such-process-zz9'\n")
        mon = Monitor()
        probes = register_probes(mon, config.probes)
        values: dict[str, Any] = {}
        for names, poll in probes.functions.items():
            result = poll()  # no sleeping: rates may still be None, which is a valid value
            values.update(zip(names, _values(result, len(names)), strict=True))
        return probes, values, mon

    def test_every_point_is_registered_under_its_parent(
        self, polled: tuple[RegisteredProbes, dict[str, Any], Monitor]
    ) -> None:
        """All points exist in the Monitor, under the expected parents, with valid unique names."""
        probes, values, mon = polled
        assert set(values) == set(probes.points)
        assert len(probes.points) == len(set(probes.points))
        for point in probes.points:
            assert point in mon
            assert mon[point].parent == probes.parents[point]
            naming.check_name(point)
        expected = {
            "cpu_total_percent": "CPU",
            "load_1min": "CPU",
            "load_15min": "CPU",
            "memory_used_percent": "Memory",
            "memory_available_bytes": "Memory",
            "swap_used_percent": "Memory",
            "uptime_s": "System",
            "no_such": "Processes",
        }
        for point, parent in expected.items():
            assert probes.parents[point] == parent
        per_core = [p for p in probes.points if p.startswith("cpu") and p[3:4].isdigit()]
        assert len(per_core) == psutil.cpu_count()
        assert {probes.parents[p] for p in probes.points} <= {
            "CPU",
            "Memory",
            "Disk",
            "Network",
            "Sensors",
            "System",
            "Processes",
        }

    def test_units_are_in_the_names(self, polled: tuple[RegisteredProbes, dict[str, Any], Monitor]) -> None:
        """Every probe point but a process check's running count ends with its unit."""
        probes, _, _ = polled
        for point in probes.points:
            if probes.parents[point] == "Processes" and point == "no_such":
                continue
            assert point.endswith(UNIT_SUFFIXES), point

    def test_values_are_well_formed(self, polled: tuple[RegisteredProbes, dict[str, Any], Monitor]) -> None:
        """Percentages within 0-100, byte counts non-negative ints, rates non-negative or None."""
        _, values, _ = polled
        for point, value in values.items():
            if isinstance(value, Alert):
                continue
            if point.endswith("_percent"):
                assert value is None or (isinstance(value, float) and 0.0 <= value <= 100.0), (point, value)
            elif point.endswith("_bytes"):
                # None only where nothing is known (the process check that matches nothing).
                assert value is None or (isinstance(value, int) and value >= 0), (point, value)
            elif point.endswith("_per_s"):
                assert value is None or (isinstance(value, float) and value >= 0.0), (point, value)
            elif point.endswith(("min", "_s", "_c", "_rpm")):
                assert type(value) in (int, float), (point, value)
        assert values["uptime_s"] > 0
        assert 0 < values["memory_available_bytes"] <= values["memory_total_bytes"]
        assert values["no_such_rss_bytes"] is None
        assert all(values[f"load_{n}min"] >= 0 for n in (1, 5, 15))
        assert values["no_such"] == RedAlert(0)
        root_free = [p for p in values if p.endswith("_free_bytes")]
        assert root_free, "at least one file system is watched"
        for free in root_free:
            assert values[free] <= values[free.replace("_free_", "_total_")]

    def test_thresholds_apply_to_probe_paths(self, polled: tuple[RegisteredProbes, dict[str, Any], Monitor]) -> None:
        """The documented paths are what threshold patterns see."""
        probes, _, _ = polled
        assert probes.path("cpu_total_percent") == "CPU/cpu_total_percent"
        rule = ThresholdRule([Threshold("CPU/cpu_total_percent", red=90.0), Threshold("Disk/*_used_percent", red=95)])
        assert rule.apply(probes.path("cpu_total_percent"), 95.0) is RedAlert
        mount_points = [p for p in probes.points if p.endswith("_used_percent") and probes.parents[p] == "Disk"]
        assert rule.apply(probes.path(mount_points[0]), 96.0) is RedAlert

    def test_families_can_be_switched_off(self) -> None:
        """enabled = false registers nothing for that family."""
        config = parse_agent_config(
            "\n".join(f"[probes.{family}]\nenabled = false" for family in ("cpu", "load", "disk", "network", "uptime"))
        )
        probes = register_probes(Monitor(), config.probes)
        assert {probes.parents[p] for p in probes.points} <= {"Memory", "Disk", "Sensors"}
        assert not any(p.endswith("_used_percent") and probes.parents[p] == "Disk" for p in probes.points)

    def test_family_dt_is_used(self) -> None:
        """Each family is polled at its own interval, default or configured."""
        config = parse_agent_config(
            "[probes.memory]\ndt_s = 2.5\n[[probes.process]]\nname = 'p'\nmatch = 'zz9'\ndt_s = 7"
        )
        probes = register_probes(Monitor(), config.probes)
        intervals = {name: probes.dt_s[name] for name in ("cpu_total_percent", "uptime_s", "memory_used_percent", "p")}
        assert intervals == {"cpu_total_percent": 5.0, "uptime_s": 60.0, "memory_used_percent": 2.5, "p": 7.0}


# ----------------------------------------------------------------------
# First sight: default thresholds, down virtual interfaces, rates from the first poll
# ----------------------------------------------------------------------

IfStats = namedtuple("IfStats", "isup")


class TestFirstSight:
    def test_down_virtual_interfaces_are_left_out_unless_configured(self) -> None:
        from gsmon.agent.probes.network import down_virtual_interfaces

        stats = {"eth0": IfStats(True), "ifb0": IfStats(False), "docker0": IfStats(False), "wg0": IfStats(True)}
        virtual = {"ifb0", "docker0", "wg0", "lo"}
        left_out = down_virtual_interfaces(stats, virtual)
        assert left_out == {"ifb0", "docker0"}  # wg0 is up; eth0 is not virtual; lo has no stats here
        available = ["lo", "eth0", "ifb0", "docker0", "wg0"]
        assert choose_interfaces(available, NetworkProbe(), left_out=left_out) == ["eth0", "wg0"]
        assert choose_interfaces(available, NetworkProbe(interfaces=("ifb0",)), left_out=left_out) == ["ifb0"]

    def test_the_probes_offer_default_thresholds_after_the_operators(self) -> None:
        config = parse_agent_config("[[thresholds]]\npoint = 'CPU/cpu_total_percent'\nred = 50.0\n")
        probes = register_probes(Monitor(), config.probes)
        points = {threshold.point for threshold in probes.default_thresholds}
        assert {"CPU/cpu_total_percent", "CPU/load_5min", "Memory/memory_used_percent"} <= points
        assert {"Memory/swap_used_percent", "Disk/*_used_percent"} <= points
        rule = ThresholdRule([*config.thresholds, *probes.default_thresholds])
        assert rule.apply("CPU/cpu_total_percent", 60.0) is RedAlert  # the operator's rule wins
        assert rule.apply("Memory/memory_used_percent", 50.0) is GreenAlert  # judged: colours from the start
        assert rule.apply("Memory/memory_used_percent", 90.0) is OrangeAlert
        assert rule.apply("Disk/root_used_percent", 96.0) is RedAlert

    def test_rates_have_values_from_the_first_poll_after_the_wait(self) -> None:
        clock = FakeClock()
        feed = iter([{"eth0": NetCounters(0, 0, 0, 0, 0, 0)}, {"eth0": NetCounters(1000, 0, 0, 0, 0, 0)}])
        probes = RegisteredProbes(Monitor())
        register_network(probes, NetworkProbe(), read=lambda: next(feed), clock=clock)
        assert probes.primed_at == clock()
        wait = probes.first_rates_in_s(clock())
        assert 0.25 <= wait <= 0.3
        clock.advance(wait)
        assert probes.first_rates_in_s(clock()) == 0.0
        ((_, poll),) = probes.functions.items()
        rx = poll()[0]
        assert rx is not None
        assert rx > 0, "the first poll already has a rate"
        assert RegisteredProbes(Monitor()).first_rates_in_s(0.0) == 0.0  # nothing primed: no wait
