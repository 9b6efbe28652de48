"""The app's look: a dark and a light palette, one stylesheet, icons that show on both.

Every colour the views use comes from :class:`Colors` so screens stay consistent
(and the plots match the widgets around them). :func:`apply` picks the palette the
system asks for (dark when it does not say: video looks best on a dark surround),
fills ``Colors`` from it and styles the application; when the system switches, the
app follows (widgets built later use the new colours; the stylesheet and palette
update everything drawn by Qt at once).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from PyQt6.QtCore import QObject, QSize, Qt, pyqtSignal
from PyQt6.QtGui import QColor, QFont, QIcon, QPainter, QPalette, QPixmap
from PyQt6.QtWidgets import QAbstractButton, QApplication, QStyle, QWidget

# Colour emoji fonts the system may draw emoji with (fontconfig falls back to them by
# itself). Debian: fonts-noto-color-emoji, in the Makefile's GUI packages.
EMOJI_FONTS = ("Noto Color Emoji", "Apple Color Emoji", "Segoe UI Emoji", "Twemoji")


@dataclass(frozen=True, slots=True)
class Palette:
    """One colour scheme: every colour a view may use."""

    name: str
    BG: str
    SURFACE: str
    SURFACE_2: str
    BORDER: str
    TEXT: str
    MUTED: str
    ACCENT: str
    ACCENT_HOVER: str
    LIVE: str
    WARN: str
    DANGER: str
    OWN: str  # our own peer / our own chat lines
    PLOT_A: str
    PLOT_B: str
    VIDEO_BG: str = "#000000"
    ON_ACCENT: str = "#ffffff"  # text and icons on accent/danger buttons


DARK = Palette(
    name="dark", BG="#14161b", SURFACE="#1c1f26", SURFACE_2="#252932", BORDER="#323743",
    TEXT="#e7e9ee", MUTED="#9aa3b2", ACCENT="#4c8dff", ACCENT_HOVER="#6aa1ff",
    LIVE="#2fbf71", WARN="#f0a530", DANGER="#e5484d", OWN="#ffd166",
    PLOT_A="#4c8dff", PLOT_B="#2fbf71",
)
# Same hues, darker where they sit on white so text keeps a 4.5:1 contrast.
LIGHT = Palette(
    name="light", BG="#f3f4f7", SURFACE="#ffffff", SURFACE_2="#eef0f4", BORDER="#cfd4dd",
    TEXT="#1b1e24", MUTED="#5b6472", ACCENT="#2563eb", ACCENT_HOVER="#1d4ed8",
    LIVE="#16803c", WARN="#a35c00", DANGER="#c9252c", OWN="#8a5a00",
    PLOT_A="#2563eb", PLOT_B="#16803c",
)


class Colors:
    """The active palette's colours (dark until :func:`apply` picks the system's)."""

    NAME = DARK.name
    BG = DARK.BG
    SURFACE = DARK.SURFACE
    SURFACE_2 = DARK.SURFACE_2
    BORDER = DARK.BORDER
    TEXT = DARK.TEXT
    MUTED = DARK.MUTED
    ACCENT = DARK.ACCENT
    ACCENT_HOVER = DARK.ACCENT_HOVER
    LIVE = DARK.LIVE
    WARN = DARK.WARN
    DANGER = DARK.DANGER
    OWN = DARK.OWN
    PLOT_A = DARK.PLOT_A
    PLOT_B = DARK.PLOT_B
    VIDEO_BG = DARK.VIDEO_BG
    ON_ACCENT = DARK.ON_ACCENT


class ThemeNotifier(QObject):
    """Tells widgets that paint with :class:`Colors` themselves that the palette changed.

    Signals:
        changed(Palette): the palette now in use.
    """

    changed = pyqtSignal(object)


# One for the whole app: widgets with colours of their own connect to it.
notifier = ThemeNotifier()

# A button's themed icon: (standard pixmap name, colour attribute of Colors or "").
_ICON_PROPERTY = "treecast_icon"


def use_palette(palette: Palette) -> None:
    """Make ``palette`` the one :class:`Colors` hands out."""
    for f in dataclasses.fields(palette):
        setattr(Colors, "NAME" if f.name == "name" else f.name, getattr(palette, f.name))


def system_palette(app: QApplication) -> Palette:
    """The palette the system's colour scheme asks for (dark when it says nothing)."""
    hints = app.styleHints()
    scheme = hints.colorScheme() if hints is not None else Qt.ColorScheme.Unknown
    return LIGHT if scheme == Qt.ColorScheme.Light else DARK


def stylesheet() -> str:
    """The application stylesheet for the active palette."""
    return f"""
QWidget {{
    color: {Colors.TEXT};
    font-size: 10pt;
}}
QMainWindow, QStackedWidget#mainStack, QWidget#page {{
    background: {Colors.BG};
}}
QFrame#card {{
    background: {Colors.SURFACE};
    border: 1px solid {Colors.BORDER};
    border-radius: 10px;
}}
QLabel#title {{
    font-size: 22pt;
    font-weight: 600;
}}
QLabel#subtitle, QLabel#muted {{
    color: {Colors.MUTED};
}}
QLabel#section {{
    color: {Colors.MUTED};
    font-size: 9pt;
    font-weight: 600;
    letter-spacing: 1px;
}}
QLabel#metricValue {{
    font-size: 13pt;
    font-weight: 600;
}}
QLabel#metricName {{
    color: {Colors.MUTED};
    font-size: 8pt;
}}
QLabel#rec {{
    color: {Colors.DANGER};
    font-weight: 700;
}}
QLabel#live {{
    background: {Colors.DANGER};
    color: white;
    border-radius: 4px;
    padding: 2px 8px;
    font-weight: 700;
}}
QLineEdit, QComboBox, QSpinBox, QTextBrowser, QListWidget, QTreeWidget, QTableView {{
    background: {Colors.SURFACE_2};
    border: 1px solid {Colors.BORDER};
    border-radius: 6px;
    padding: 5px 8px;
    selection-background-color: {Colors.ACCENT};
}}
QLineEdit:focus, QComboBox:focus, QSpinBox:focus {{
    border: 1px solid {Colors.ACCENT};
}}
QLineEdit:disabled, QComboBox:disabled, QSpinBox:disabled {{
    color: {Colors.MUTED};
}}
QListWidget::item, QTreeWidget::item {{
    padding: 4px 2px;
}}
QHeaderView::section {{
    background: {Colors.SURFACE};
    color: {Colors.MUTED};
    border: none;
    border-bottom: 1px solid {Colors.BORDER};
    padding: 4px 6px;
}}
QPushButton {{
    background: {Colors.SURFACE_2};
    border: 1px solid {Colors.BORDER};
    border-radius: 6px;
    padding: 6px 14px;
}}
QPushButton:hover {{
    border-color: {Colors.ACCENT};
}}
QPushButton:disabled {{
    color: {Colors.MUTED};
    background: {Colors.SURFACE};
}}
QPushButton#primary {{
    background: {Colors.ACCENT};
    border: none;
    color: white;
    font-weight: 600;
}}
QPushButton#primary:hover {{
    background: {Colors.ACCENT_HOVER};
}}
QPushButton#primary:disabled, QPushButton#big:disabled {{
    background: {Colors.SURFACE_2};
    color: {Colors.MUTED};
}}
QPushButton#big {{
    background: {Colors.ACCENT};
    border: none;
    color: white;
    font-size: 13pt;
    font-weight: 600;
    padding: 14px 24px;
    border-radius: 8px;
}}
QPushButton#big:hover {{
    background: {Colors.ACCENT_HOVER};
}}
QPushButton#bigSecondary {{
    background: {Colors.SURFACE_2};
    border: 1px solid {Colors.BORDER};
    font-size: 13pt;
    font-weight: 600;
    padding: 14px 24px;
    border-radius: 8px;
}}
QPushButton#danger {{
    background: {Colors.DANGER};
    border: none;
    color: white;
    font-weight: 600;
}}
QTabWidget::pane {{
    border: 1px solid {Colors.BORDER};
    border-radius: 8px;
    background: {Colors.SURFACE};
    top: -1px;
}}
QTabBar::tab {{
    background: transparent;
    color: {Colors.MUTED};
    padding: 7px 12px;
    border-bottom: 2px solid transparent;
}}
QTabBar::tab:selected {{
    color: {Colors.TEXT};
    border-bottom: 2px solid {Colors.ACCENT};
}}
QProgressBar {{
    background: {Colors.SURFACE_2};
    border: none;
    border-radius: 4px;
    height: 8px;
    text-align: center;
    color: transparent;
}}
QProgressBar::chunk {{
    background: {Colors.ACCENT};
    border-radius: 4px;
}}
QRadioButton, QCheckBox {{
    spacing: 8px;
}}
QRadioButton::indicator, QCheckBox::indicator {{
    width: 14px;
    height: 14px;
    border: 2px solid {Colors.BORDER};
    background: {Colors.SURFACE_2};
}}
QRadioButton::indicator {{
    border-radius: 9px;
}}
QCheckBox::indicator {{
    border-radius: 4px;
}}
QRadioButton::indicator:checked {{
    border: 5px solid {Colors.ACCENT};
    width: 8px;
    height: 8px;
    background: white;
}}
QCheckBox::indicator:checked {{
    border: 2px solid {Colors.ACCENT};
    background: {Colors.ACCENT};
}}
QRadioButton::indicator:hover, QCheckBox::indicator:hover {{
    border-color: {Colors.ACCENT};
}}
QComboBox::drop-down {{
    border: none;
    width: 22px;
}}
QSplitter::handle {{
    background: {Colors.BG};
}}
QToolTip {{
    background: {Colors.SURFACE_2};
    color: {Colors.TEXT};
    border: 1px solid {Colors.BORDER};
}}
"""


def apply(app: QApplication, palette: Palette | None = None, follow: bool = True) -> Palette:
    """Give the application the Treecast look (Fusion + palette + stylesheet).

    Args:
        app: the application.
        palette: DARK or LIGHT; the system's choice by default.
        follow: switch along when the system's colour scheme changes later.

    Returns:
        The palette in use.
    """
    chosen = palette or system_palette(app)
    use_palette(chosen)
    app.setStyle("Fusion")  # same look on every platform; native styles ignore QSS bits
    qpalette = QPalette()
    roles = {
        QPalette.ColorRole.Window: Colors.BG,
        QPalette.ColorRole.WindowText: Colors.TEXT,
        QPalette.ColorRole.Base: Colors.SURFACE_2,
        QPalette.ColorRole.AlternateBase: Colors.SURFACE,
        QPalette.ColorRole.Text: Colors.TEXT,
        QPalette.ColorRole.Button: Colors.SURFACE_2,
        QPalette.ColorRole.ButtonText: Colors.TEXT,
        QPalette.ColorRole.Highlight: Colors.ACCENT,
        QPalette.ColorRole.HighlightedText: Colors.ON_ACCENT,
        QPalette.ColorRole.ToolTipBase: Colors.SURFACE_2,
        QPalette.ColorRole.ToolTipText: Colors.TEXT,
        QPalette.ColorRole.PlaceholderText: Colors.MUTED,
        QPalette.ColorRole.Link: Colors.ACCENT,
    }
    for role, color in roles.items():
        qpalette.setColor(role, QColor(color))
    qpalette.setColor(
        QPalette.ColorGroup.Disabled, QPalette.ColorRole.Text, QColor(Colors.MUTED)
    )
    qpalette.setColor(
        QPalette.ColorGroup.Disabled, QPalette.ColorRole.ButtonText, QColor(Colors.MUTED)
    )
    app.setPalette(qpalette)
    app.setFont(ui_font(app.font()))
    app.setStyleSheet(stylesheet())
    for widget in app.allWidgets():
        if isinstance(widget, QAbstractButton) and widget.property(_ICON_PROPERTY):
            name, color_name = str(widget.property(_ICON_PROPERTY)).split("|")
            tint = getattr(Colors, color_name) if color_name else None
            widget.setIcon(icon(widget, name, tint))
    notifier.changed.emit(chosen)
    hints = app.styleHints()
    if follow and palette is None and hints is not None and not app.property("treecast_follows"):
        app.setProperty("treecast_follows", True)
        hints.colorSchemeChanged.connect(lambda _scheme: apply(app, follow=False))
    return chosen


def ui_font(font: QFont) -> QFont:
    """The UI font at a readable size.

    Emoji come from fontconfig's fallback once an emoji font is installed (Debian:
    fonts-noto-color-emoji). Naming the emoji font in Qt (as a family or a
    substitution) is worse: it then draws digits and spaces too, which it carries for
    keycaps, tiny and spaced out.
    """
    font = QFont(font)
    if font.pointSizeF() < 10:
        font.setPointSizeF(10)
    font.setStyleStrategy(QFont.StyleStrategy.PreferAntialias)
    return font


def icon(widget: QWidget, name: str, color: str | None = None) -> QIcon:
    """A standard icon by QStyle name (e.g. "SP_MediaPlay"), drawn in one colour.

    Fusion's standard icons are dark grey: on the dark theme they all but vanish.
    Repainting their shape in the text colour (or ``color``, e.g. white on an accent
    button) gives them the contrast of the text next to them on either theme.
    """
    pixmap_name = getattr(QStyle.StandardPixmap, name)
    style = widget.style() or QApplication.style()
    if style is None:
        return QIcon()
    return tinted(style.standardIcon(pixmap_name), color or Colors.TEXT)


def set_icon(button: QAbstractButton, name: str, role: str = "") -> None:
    """Give ``button`` a standard icon tinted for the theme, re-tinted when it changes.

    Args:
        button: the button.
        name: a QStyle standard pixmap name, e.g. "SP_MediaPlay".
        role: the Colors attribute to paint it in ("ON_ACCENT" on accent buttons);
            the text colour by default.
    """
    button.setProperty(_ICON_PROPERTY, f"{name}|{role}")
    button.setIcon(icon(button, name, getattr(Colors, role) if role else None))


def tinted(source: QIcon, color: str, size: int = 32) -> QIcon:
    """``source``'s shape filled with ``color`` (alpha kept, hue replaced)."""
    pixmap = source.pixmap(QSize(size, size))
    if pixmap.isNull():
        return source
    painted = QPixmap(pixmap.size())
    painted.fill(Qt.GlobalColor.transparent)
    painter = QPainter(painted)
    try:
        painter.drawPixmap(0, 0, pixmap)
        painter.setCompositionMode(QPainter.CompositionMode.CompositionMode_SourceIn)
        painter.fillRect(painted.rect(), QColor(color))
    finally:
        painter.end()
    return QIcon(painted)


def dot_icon(color: str, size: int = 16) -> QIcon:
    """A filled circle (the "record" mark)."""
    pixmap = QPixmap(size, size)
    pixmap.fill(Qt.GlobalColor.transparent)
    painter = QPainter(pixmap)
    try:
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(QColor(color))
        margin = size // 5
        painter.drawEllipse(margin, margin, size - 2 * margin, size - 2 * margin)
    finally:
        painter.end()
    return QIcon(pixmap)


def square_icon(color: str, size: int = 16) -> QIcon:
    """A filled square (the "stop" mark)."""
    pixmap = QPixmap(size, size)
    pixmap.fill(Qt.GlobalColor.transparent)
    painter = QPainter(pixmap)
    try:
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(QColor(color))
        margin = size // 4
        painter.drawRoundedRect(margin, margin, size - 2 * margin, size - 2 * margin, 1.5, 1.5)
    finally:
        painter.end()
    return QIcon(pixmap)


def label_style(color: str, bold: bool = False) -> str:
    """Inline stylesheet for a coloured label."""
    weight = "font-weight: 600;" if bold else ""
    return f"color: {color}; {weight}"
