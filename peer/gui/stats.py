"""Live statistics: the numbers of the last second and a minute of history."""

from __future__ import annotations

import math
from collections import deque

import pyqtgraph as pg
from PyQt6.QtCore import Qt, pyqtSlot
from PyQt6.QtWidgets import QGridLayout, QHBoxLayout, QVBoxLayout, QWidget

from peer.gui import theme
from peer.gui.bridge import Stats
from peer.gui.theme import Colors
from peer.gui.widgets import Metric

# The plots show the last minute: long enough to see a trend or a repair, short
# enough that a spike stays visible.
HISTORY_S = 60.0

# Free-text values (a parent's name, the sound line) are capped so the plots keep
# their room; the whole text is in the tooltip.
METRIC_MAX_PX = {"parent": 96, "sound": 150}
# (key, caption) of the numbers shown, in grid order.
METRICS = (
    ("fps", "FPS"),
    ("kbps_in", "in"),
    ("kbps_out", "out"),
    ("latency", "latency p50/p95"),
    ("loss", "loss"),
    ("resolution", "resolution"),
    ("depth", "depth"),
    ("parent", "parent"),
    ("children", "children"),
    ("sound", "sound"),
)


def _ms(value: float | None) -> str:
    return "—" if value is None else f"{value:.0f}"


def _fmt_kbps(value: float) -> str:
    # kbps up to 10 Mbps reads naturally; beyond, Mbps keeps the number short.
    return f"{value / 1000:.1f} Mbps" if value >= 10_000 else f"{value:.0f} kbps"


def format_stats(stats: Stats) -> dict[str, str]:
    """The texts the panel shows for one Stats event (also used by tests)."""
    latency = (
        "—"
        if stats.latency_ms is None
        else f"{_ms(stats.latency_ms)} / {_ms(stats.latency_p95_ms)} ms"
    )
    return {
        "fps": f"{stats.fps:.1f}",
        "kbps_in": _fmt_kbps(stats.kbps_in),
        "kbps_out": _fmt_kbps(stats.kbps_out),
        "latency": latency,
        "loss": f"{stats.loss_pct:.1f} %",
        "resolution": (f"{stats.height}p" + (" auto" if stats.wanted == "auto" else ""))
        if stats.height else "—",
        "depth": "—" if stats.depth is None else str(stats.depth),
        "parent": stats.parent or "—",
        "children": str(stats.children),
        "sound": _sound(stats),
    }


def _sound(stats: Stats) -> str:
    """Sound bit rate, loss and how far it is from the picture (+: after it)."""
    audio = stats.audio
    if audio is None or not audio.sound:
        return "none"
    text = f"{audio.kbps:.0f} kbps · {audio.loss_pct:.1f} %"
    if audio.av_offset_ms is not None:
        text += f" · A/V {audio.av_offset_ms:+.0f} ms"
    return text


class _Plot(pg.PlotWidget):
    """A small time plot with two series and a legend."""

    def __init__(
        self, title: str, unit: str, names: tuple[str, str], empty_top: float
    ) -> None:
        super().__init__(background=Colors.SURFACE)
        self.empty_top = empty_top
        self.setMinimumHeight(120)
        self.setMouseEnabled(x=False, y=False)
        # A picture, not a control: no tab stop (its numbers are in the grid beside).
        self.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        viewport = self.viewport()
        if viewport is not None:
            viewport.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.setAccessibleName(f"{title} plot")
        self.hideButtons()
        self.setMenuEnabled(False)
        item = self.getPlotItem()
        item.setTitle(f'<span style="color:{Colors.MUTED};font-size:9pt">{title}</span>')
        self.title = title
        # Never narrower than the title: a cut title reads as a glitch.
        self.setMinimumWidth(int(item.titleLabel.item.boundingRect().width()) + 24)
        item.showGrid(x=True, y=True, alpha=0.15)
        item.setXRange(-HISTORY_S, 0, padding=0)
        item.setLabel("left", units=unit, color=Colors.MUTED)
        item.getAxis("left").enableAutoSIPrefix(False)
        item.getAxis("left").setWidth(44)
        # Top-left and in one row: recent samples are drawn on the right, and the
        # y range keeps headroom above the data (see set_series) for the legend.
        legend = item.addLegend(
            offset=(6, 2), labelTextColor=Colors.MUTED, labelTextSize="8pt", colCount=2
        )
        legend.setBrush(pg.mkBrush(None))
        legend.setPen(pg.mkPen(None))
        self.curves = (item.plot(name=names[0]), item.plot(name=names[1]))
        self.restyle()  # the colours: axes, pens, legend (again when the theme changes)
        self.set_series([], [], [])
        theme.notifier.changed.connect(self.restyle)

    @pyqtSlot(object)
    def restyle(self, _palette: object = None) -> None:
        """Paint in the active palette (at build time and when the theme changes)."""
        self.setBackground(Colors.SURFACE)
        item = self.getPlotItem()
        item.setTitle(f'<span style="color:{Colors.MUTED};font-size:9pt">{self.title}</span>')
        for axis in ("left", "bottom"):
            ax = item.getAxis(axis)
            ax.setPen(pg.mkPen(Colors.BORDER))
            ax.setTextPen(pg.mkPen(Colors.MUTED))
        if item.legend is not None:
            item.legend.setLabelTextColor(Colors.MUTED)
        self.curves[0].setPen(pg.mkPen(Colors.PLOT_A, width=2))
        self.curves[1].setPen(pg.mkPen(Colors.PLOT_B, width=2))

    def set_series(self, xs: list[float], a: list[float], b: list[float]) -> None:
        """Draw both series; the y axis starts at 0 (a trend reads right only then)."""
        self.curves[0].setData(xs, a, connect="finite")
        self.curves[1].setData(xs, b, connect="finite")
        finite = [v for v in (*a, *b) if math.isfinite(v)]
        top = max(finite, default=0.0)
        # 35 % headroom keeps the lines clear of the legend in the top band.
        self.getPlotItem().setYRange(0, top * 1.35 if top > 0 else self.empty_top, padding=0)


class StatsPanel(QWidget):
    """Numbers for the current second plus latency and bandwidth over a minute."""

    def __init__(self, parent: QWidget | None = None) -> None:
        """Args:
        parent: Qt parent.
        """
        super().__init__(parent)
        # (t, p50, p95, kbps_in, kbps_out); bounded by time in update_stats and by
        # length here in case the node reports faster than once a second.
        self._history: deque[tuple[float, float, float, float, float]] = deque(maxlen=600)
        self.updates = 0

        layout = QHBoxLayout(self)
        layout.setContentsMargins(12, 10, 12, 10)
        layout.setSpacing(16)
        grid = QGridLayout()
        grid.setHorizontalSpacing(18)
        grid.setVerticalSpacing(8)
        self.metrics: dict[str, Metric] = {}
        for index, (key, caption) in enumerate(METRICS):
            metric = Metric(caption, self)
            # Values are short numbers, but the parent is a name of any length: cap
            # it so the plots keep their room (the whole name is in the tooltip).
            if key in METRIC_MAX_PX:
                metric.value.setMaximumWidth(METRIC_MAX_PX[key])
            self.metrics[key] = metric
            grid.addWidget(metric, index // 3, index % 3)
        left = QVBoxLayout()
        left.addLayout(grid)
        left.addStretch(1)
        layout.addLayout(left)

        self.latency_plot = _Plot("Latency (ms)", "", ("p50", "p95"), empty_top=100.0)
        # Mbps on the axis: kbps tick labels (e.g. 25000) do not fit the narrow axis.
        # A short title: at the window's minimum width each plot is ~150 px wide.
        self.bandwidth_plot = _Plot("Bitrate (Mbps)", "", ("in", "out"), empty_top=10.0)
        layout.addWidget(self.latency_plot, 1)
        layout.addWidget(self.bandwidth_plot, 1)

    def value(self, key: str) -> str:
        """The text of a metric (see METRICS), whole even when the label elides it."""
        return self.metrics[key].text

    @pyqtSlot(object)
    def update_stats(self, stats: Stats) -> None:
        """Show a Stats event and append it to the plots."""
        self.updates += 1
        for key, text in format_stats(stats).items():
            self.metrics[key].set(text)
        nan = float("nan")  # a gap in the line where latency is unknown
        self._history.append((
            stats.t,
            nan if stats.latency_ms is None else stats.latency_ms,
            nan if stats.latency_p95_ms is None else stats.latency_p95_ms,
            stats.kbps_in,
            stats.kbps_out,
        ))
        while self._history and self._history[0][0] < stats.t - HISTORY_S:
            self._history.popleft()
        xs = [t - stats.t for t, *_ in self._history]
        columns = list(zip(*(row[1:] for row in self._history), strict=True))
        self.latency_plot.set_series(xs, list(columns[0]), list(columns[1]))
        self.bandwidth_plot.set_series(
            xs, [v / 1000 for v in columns[2]], [v / 1000 for v in columns[3]]
        )

    def history_len(self) -> int:
        """Samples kept for the plots (at most a minute's worth)."""
        return len(self._history)

    def clear(self) -> None:
        """Forget the numbers and the history (a new session)."""
        self._history.clear()
        for metric in self.metrics.values():
            metric.set("—")
        for plot in (self.latency_plot, self.bandwidth_plot):
            plot.set_series([], [], [])
