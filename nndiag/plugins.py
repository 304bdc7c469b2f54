"""The plugin host: built-in and third-party probes and writers through one path.

:class:`PluginHost` is the typed facade over pluggy that the runner, the CLI and the pytest
plugin use (tox's ``plugin/manager.py``): ``probes()``, ``select()``, ``writers()``,
``probe_finished()``, ``run_finished()``. One host is built per run, never at import time, so
importing nndiag stays cheap. Third-party plugins come from the ``nndiag`` entry-point group;
``NNDIAG_DISABLED_PLUGINS`` (comma-separated plugin or entry-point names) blocks named ones, like
tox's ``TOX_DISABLED_EXTERNAL_PLUGINS``.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable

import pluggy

from nndiag import hookspecs
from nndiag.errors import UsageError

if TYPE_CHECKING:  # pragma: no cover
    from nndiag.report import ProbeResult, Report
    from nndiag.writers import Writer

ENTRY_POINT_GROUP = "nndiag"
DISABLE_ENV = "NNDIAG_DISABLED_PLUGINS"

# Built-in plugins, registered exactly like third-party ones (datasette's DEFAULT_PLUGINS).
DEFAULT_WRITER_PLUGINS: tuple[str, ...] = ("nndiag.writers.builtin",)
DEFAULT_PROBE_PLUGINS: tuple[str, ...] = (
    "nndiag.probes.params",
    "nndiag.probes.data",
    "nndiag.probes.nan",
    "nndiag.probes.gradients",
    "nndiag.probes.dead_neurons",
    "nndiag.probes.saturation",
    "nndiag.probes.loss_setup",
    "nndiag.probes.overfit",
    "nndiag.probes.lr_range",
    "nndiag.probes.updates",
    "nndiag.probes.batch_independence",
)
DEFAULT_PLUGINS: tuple[str, ...] = DEFAULT_PROBE_PLUGINS + DEFAULT_WRITER_PLUGINS


@dataclass(frozen=True)
class ProbeSpec:
    """A registered probe: its id, class and the plugin that provided it."""

    id: str
    cls: type
    plugin: str

    @property
    def description(self) -> str:
        """The probe's one-line description."""
        return self.cls.description

    @property
    def cost(self) -> int:
        """Where the probe runs in a check: lower first (``Probe.cost``)."""
        from nndiag.probe import DEFAULT_COST

        cost = getattr(self.cls, "cost", DEFAULT_COST)
        return cost if isinstance(cost, (int, float)) and not isinstance(cost, bool) else DEFAULT_COST


def _disabled() -> set[str]:
    return {n.strip() for n in os.environ.get(DISABLE_ENV, "").split(",") if n.strip()}


def get_plugin_manager(extra_plugins: Iterable[object] = (), *, load_entry_points: bool = True,
                       builtin_probes: bool = True) -> pluggy.PluginManager:
    """A plugin manager with the built-ins, the entry-point plugins and ``extra_plugins``.

    ``pm.check_pending()`` makes a misspelled ``nndiag_*`` hook fail loudly instead of being ignored.
    ``builtin_probes=False`` leaves the built-in probe modules (and so torch) unimported, for a
    caller that only writes reports.
    """
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    disabled = _disabled()
    for name in (DEFAULT_PLUGINS if builtin_probes else DEFAULT_WRITER_PLUGINS):
        if name not in disabled:
            pm.register(importlib.import_module(name), name=name)
    if load_entry_points:
        for name in disabled:
            pm.set_blocked(name)
        pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
    for plugin in extra_plugins:
        name = getattr(plugin, "__name__", None) or repr(plugin)
        if pm.is_registered(plugin) or name in disabled:
            continue
        pm.register(plugin, name=name)
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:  # a misspelled nndiag_* hook
        raise UsageError(f"Plugin {exc.plugin!r}: {exc}.",
                         hint="Check the hook's name against nndiag/hookspecs.py (see docs/plugins.md).") from None
    return pm


def collect_probes(pm: pluggy.PluginManager) -> dict[str, ProbeSpec]:
    """Every registered probe by id, sorted by id; UsageError naming both plugins on a duplicate id."""
    specs: dict[str, ProbeSpec] = {}
    for impl in pm.hook.nndiag_register_probes.get_hookimpls():
        plugin_name = pm.get_name(impl.plugin) or repr(impl.plugin)
        for cls in impl.function() or ():
            probe_id = getattr(cls, "id", "")
            if not probe_id:
                raise UsageError(f"Plugin {plugin_name} registers a probe class {cls.__name__} with no id.",
                                 hint="Set the class attribute `id`.")
            if probe_id in specs:
                raise UsageError(
                    f"Probe id {probe_id!r} is registered twice: by {specs[probe_id].plugin} and by {plugin_name}.",
                    hint=f"Rename one of them, or block a plugin with {DISABLE_ENV}=<name>.",
                )
            specs[probe_id] = ProbeSpec(probe_id, cls, plugin_name)
    return dict(sorted(specs.items()))


def select_probes(
    available: dict[str, ProbeSpec], only: Iterable[str] = (), skip: Iterable[str] = ()
) -> list[ProbeSpec]:
    """The probes to run, in registry order: ``only`` (if given) minus ``skip``.

    UsageError naming the known ids for any unknown id, so a typo never silently checks nothing.
    """
    only, skip = list(only), list(skip)
    unknown = [p for p in only + skip if p not in available]
    if unknown:
        raise UsageError(
            f"Unknown probe id {', '.join(repr(u) for u in unknown)}.",
            hint=f"Known probes: {', '.join(available)} (see `nndiag probes`).",
        )
    chosen = [s for pid, s in available.items() if (not only or pid in only) and pid not in skip]
    return _in_cost_order(chosen)


def _in_cost_order(specs: list[ProbeSpec]) -> list[ProbeSpec]:
    """Cheapest first (each probe's ``cost``), so an interrupted run has the quick answers; ties by id."""
    return sorted(specs, key=lambda s: (s.cost, s.id))


def collect_writers(pm: pluggy.PluginManager) -> dict[str, "Writer"]:
    """Every registered writer by format; UsageError naming both plugins on a duplicate format."""
    found: dict[str, tuple["Writer", str]] = {}
    for impl in pm.hook.nndiag_register_writers.get_hookimpls():
        plugin_name = pm.get_name(impl.plugin) or repr(impl.plugin)
        for writer in impl.function() or ():
            fmt = getattr(writer, "format", "")
            if not fmt or not callable(getattr(writer, "render_report", None)):
                raise UsageError(f"Plugin {plugin_name} registers {writer!r}, which is not a writer.",
                                 hint="Return nndiag.writers.Writer(format, suffixes, description, render).")
            if fmt in found:
                raise UsageError(f"Report format {fmt!r} is registered twice: by {found[fmt][1]} and by "
                                 f"{plugin_name}.", hint=f"Rename one, or block a plugin with {DISABLE_ENV}=<name>.")
            found[fmt] = (writer, plugin_name)
    return {fmt: w for fmt, (w, _) in sorted(found.items())}


class PluginHost:
    """The plugins of one run, behind typed methods (build one per run and pass it down).

    ``builtin_probes=False`` gives a host for writing reports only (no torch import).
    """

    def __init__(self, extra_plugins: Iterable[object] = (), *, load_entry_points: bool = True,
                 builtin_probes: bool = True) -> None:
        self.pm = get_plugin_manager(extra_plugins, load_entry_points=load_entry_points,
                                     builtin_probes=builtin_probes)
        self._probes: dict[str, ProbeSpec] | None = None
        self._writers: dict[str, Writer] | None = None

    def probes(self) -> dict[str, ProbeSpec]:
        """Every registered probe by id, sorted by id (computed once)."""
        if self._probes is None:
            self._probes = collect_probes(self.pm)
        return self._probes

    def select(self, only: Iterable[str] = (), skip: Iterable[str] = ()) -> list[ProbeSpec]:
        """The probes to run, cheapest first: ``only`` (if given) minus ``skip``."""
        return select_probes(self.probes(), only, skip)

    def writers(self) -> dict[str, "Writer"]:
        """Every registered writer by format (computed once)."""
        if self._writers is None:
            self._writers = collect_writers(self.pm)
        return self._writers

    def writer(self, path: str, format: str | None = None) -> "Writer":
        """The writer for ``format``, else for ``path``'s suffix (UsageError when none)."""
        from nndiag.writers import pick_writer

        return pick_writer(self.writers(), path, format)

    def probe_finished(self, subject: str, result: "ProbeResult") -> None:
        """Tell the plugins that a probe finished (``nndiag_probe_finished``)."""
        self.pm.hook.nndiag_probe_finished(subject=subject, result=result)

    def run_finished(self, report: "Report") -> None:
        """Tell the plugins that the run is over (``nndiag_run_finished``)."""
        self.pm.hook.nndiag_run_finished(report=report)
