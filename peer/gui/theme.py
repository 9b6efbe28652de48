"""The app's look: one dark palette, one stylesheet, a few helpers.

Every colour the views use comes from :class:`Colors` so screens stay consistent
(and the plots match the widgets around them).
"""

from __future__ import annotations

from PyQt6.QtCore import Qt
from PyQt6.QtGui import QColor, QFont, QIcon, QPainter, QPalette, QPixmap
from PyQt6.QtWidgets import QApplication, QStyle, QWidget


class Colors:
    """The palette (dark; video looks best on a dark surround)."""

    BG = "#14161b"
    SURFACE = "#1c1f26"
    SURFACE_2 = "#252932"
    BORDER = "#323743"
    TEXT = "#e7e9ee"
    MUTED = "#9aa3b2"
    ACCENT = "#4c8dff"
    ACCENT_HOVER = "#6aa1ff"
    LIVE = "#2fbf71"
    WARN = "#f0a530"
    DANGER = "#e5484d"
    OWN = "#ffd166"  # our own peer / our own chat lines
    PLOT_A = "#4c8dff"
    PLOT_B = "#2fbf71"
    VIDEO_BG = "#000000"


STYLESHEET = f"""
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


def apply(app: QApplication) -> None:
    """Give the application the Treecast look (Fusion + palette + stylesheet)."""
    app.setStyle("Fusion")  # same look on every platform; native styles ignore QSS bits
    palette = QPalette()
    roles = {
        QPalette.ColorRole.Window: Colors.BG,
        QPalette.ColorRole.WindowText: Colors.TEXT,
        QPalette.ColorRole.Base: Colors.SURFACE_2,
        QPalette.ColorRole.AlternateBase: Colors.SURFACE,
        QPalette.ColorRole.Text: Colors.TEXT,
        QPalette.ColorRole.Button: Colors.SURFACE_2,
        QPalette.ColorRole.ButtonText: Colors.TEXT,
        QPalette.ColorRole.Highlight: Colors.ACCENT,
        QPalette.ColorRole.HighlightedText: "#ffffff",
        QPalette.ColorRole.ToolTipBase: Colors.SURFACE_2,
        QPalette.ColorRole.ToolTipText: Colors.TEXT,
        QPalette.ColorRole.PlaceholderText: Colors.MUTED,
        QPalette.ColorRole.Link: Colors.ACCENT,
    }
    for role, color in roles.items():
        palette.setColor(role, QColor(color))
    palette.setColor(
        QPalette.ColorGroup.Disabled, QPalette.ColorRole.Text, QColor(Colors.MUTED)
    )
    palette.setColor(
        QPalette.ColorGroup.Disabled, QPalette.ColorRole.ButtonText, QColor(Colors.MUTED)
    )
    app.setPalette(palette)
    font = app.font()
    if font.pointSizeF() < 10:
        font.setPointSizeF(10)
    font.setStyleStrategy(QFont.StyleStrategy.PreferAntialias)
    app.setFont(font)
    app.setStyleSheet(STYLESHEET)


def icon(widget: QWidget, name: str) -> QIcon:
    """A standard icon by QStyle name (e.g. "SP_MediaPlay")."""
    pixmap = getattr(QStyle.StandardPixmap, name)
    style = widget.style() or QApplication.style()
    return style.standardIcon(pixmap) if style is not None else QIcon()


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
    """A filled square (the "stop" mark), in a colour that shows on dark buttons."""
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
