"""The live tray: the camera preview with a box, name and price on every item."""
from __future__ import annotations

from PySide6.QtCore import QPointF, QRectF, QSize, Qt, Signal
from PySide6.QtGui import (
    QColor,
    QFont,
    QFontMetricsF,
    QImage,
    QPainter,
    QPainterPath,
    QPen,
)
from PySide6.QtWidgets import QSizePolicy, QWidget

from kiosk.money import format_price

from kiosk.ui import style


class TrayView(QWidget):
    """Shows the newest frame (``set_frame``) and the items of the newest state
    (``set_items``); a tap on an item emits ``itemClicked(track_id)``."""

    itemClicked = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("TrayView")
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMinimumSize(320, 200)
        self._image: QImage | None = None
        self._items: tuple = ()
        self._currency = "CNY"
        self._placeholder = ""
        self.frame_index = -1

    # ------------------------------------------------------------------ data
    def set_frame(self, image: QImage, index: int = -1) -> None:
        self._image = image
        self.frame_index = index
        self.update()

    def set_items(self, items, currency: str = "CNY") -> None:
        self._items = tuple(items)
        self._currency = currency
        self.update()

    def set_placeholder(self, text: str) -> None:
        self._placeholder = text
        self.update()

    def sizeHint(self) -> QSize:
        return QSize(800, 450)

    # ------------------------------------------------------------- geometry
    def image_rect(self) -> QRectF:
        """Where the frame is drawn (scaled to fit, centred), in widget coordinates."""
        if self._image is None or self._image.isNull():
            return QRectF(self.rect())
        iw, ih = self._image.width(), self._image.height()
        s = min(self.width() / iw, self.height() / ih)
        w, h = iw * s, ih * s
        return QRectF((self.width() - w) / 2, (self.height() - h) / 2, w, h)

    def _scale(self) -> float:
        if self._image is None or self._image.isNull():
            return 1.0
        return self.image_rect().width() / self._image.width()

    def box_rect(self, box) -> QRectF:
        """An item box (frame pixels) in widget coordinates."""
        r, s = self.image_rect(), self._scale()
        x1, y1, x2, y2 = box
        return QRectF(r.x() + x1 * s, r.y() + y1 * s, (x2 - x1) * s, (y2 - y1) * s)

    def item_at(self, pos: QPointF):
        hits = [it for it in self._items if self.box_rect(it.box).contains(pos)]
        if not hits:  # forgiving for fingers: the nearest box within 24 px
            near = [(self._dist(self.box_rect(it.box), pos), it) for it in self._items]
            near = [n for n in near if n[0] <= 24]
            return min(near, key=lambda n: n[0])[1] if near else None
        return min(hits, key=lambda it: (it.box[2] - it.box[0]) * (it.box[3] - it.box[1]))

    @staticmethod
    def _dist(r: QRectF, p: QPointF) -> float:
        dx = max(r.left() - p.x(), 0.0, p.x() - r.right())
        dy = max(r.top() - p.y(), 0.0, p.y() - r.bottom())
        return (dx * dx + dy * dy) ** 0.5

    # ---------------------------------------------------------------- input
    def mouseReleaseEvent(self, event) -> None:
        if event.button() == Qt.MouseButton.LeftButton:
            item = self.item_at(event.position())
            if item is not None:
                self.itemClicked.emit(int(item.track_id))
        super().mouseReleaseEvent(event)

    # -------------------------------------------------------------- drawing
    def _label(self, item) -> tuple[str, str, QColor, bool]:
        """(name line, price line, colour, dashed) for an item."""
        if item.unknown or not item.sku:
            return self.tr("Please call the cashier"), self.tr("Not recognised"), \
                style.UNKNOWN, False
        price = (format_price(item.price, self._currency) if item.price is not None
                 else self.tr("No price: call the cashier"))
        if getattr(item, "qty", 1) > 1:
            price = f"{price} ×{item.qty}"
        name = item.name or item.sku
        if item.price is None:
            return name, price, style.UNPRICED, False
        if getattr(item, "unsure", False):
            return name + "?", self.tr("Not sure: call the cashier"), style.UNKNOWN, False
        source = getattr(item, "source", "recognized")
        if source == "barcode":
            return name, price + "  " + self.tr("(barcode)"), style.MANUAL, True
        if source == "cashier":
            return name, price + "  " + self.tr("(cashier)"), style.MANUAL, True
        if source == "shopper":
            return name, price + "  " + self.tr("(your choice)"), style.MANUAL, True
        return name, price, style.RECOGNISED, False

    def _place_tag(self, rect: QRectF, tw: float, th: float, others: list[QRectF],
                   placed: list[QRectF]) -> QRectF:
        """Where a box's tag goes: the first of above / below / inside-top (left-aligned, then
        right-aligned) that stays on screen and covers no other box or tag, else the one that
        covers the least."""
        def clamp_x(x: float) -> float:
            return min(max(x, 2.0), self.width() - tw - 2)

        spots = []
        for y in (rect.top() - th - 3, rect.bottom() + 3, rect.top() + 3):
            for x in (rect.left(), rect.right() - tw):
                spots.append(QRectF(clamp_x(x), y, tw, th))

        def cost(tag: QRectF) -> float:
            if tag.top() < 0 or tag.bottom() > self.height():
                return float("inf")
            c = 0.0
            for r in (*others, *placed):
                inter = tag.intersected(r)
                if not inter.isEmpty():
                    c += inter.width() * inter.height() * (2.0 if r in placed else 1.0)
            return c

        costs = [cost(t) for t in spots]
        best = min(range(len(spots)), key=lambda i: (costs[i], i))
        if costs[best] == float("inf"):  # nowhere fits on screen: inside the box's top
            return QRectF(clamp_x(rect.left()), max(0.0, rect.top() + 3), tw, th)
        return spots[best]

    def paintEvent(self, event) -> None:
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
        p.fillRect(self.rect(), QColor(38, 42, 48))
        if self._image is None or self._image.isNull():
            if self._placeholder:
                p.setPen(QColor(220, 220, 220))
                f = QFont(self.font())
                f.setPointSizeF(f.pointSizeF() * 1.4)
                p.setFont(f)
                p.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, self._placeholder)
            return
        p.drawImage(self.image_rect(), self._image)
        base = self.font().pointSizeF() * min(1.15, 0.55 + self._scale())
        bold = QFont(self.font())
        bold.setPointSizeF(max(9.0, base))
        bold.setBold(True)
        small = QFont(self.font())
        small.setPointSizeF(max(8.0, base * 0.9))
        fb, fs = QFontMetricsF(bold), QFontMetricsF(small)
        labelled = [(item, self.box_rect(item.box), *self._label(item)) for item in self._items]
        for _item, rect, _name, _price, colour, dashed in labelled:
            pen = QPen(colour, 4)
            if dashed:
                pen.setStyle(Qt.PenStyle.DashLine)
            p.setPen(pen)
            p.setBrush(Qt.BrushStyle.NoBrush)
            p.drawRoundedRect(rect, 6, 6)
        # two-line tags (name, price), drawn over the boxes, each placed where it covers the
        # fewest other boxes and tags: above the box, below it, or inside its top
        pad = 8
        th = fb.height() + fs.height() + 8
        boxes = [r for _i, r, *_rest in labelled]
        placed: list[QRectF] = []
        for n, (_item, rect, name, price, colour, _dashed) in enumerate(labelled):
            want = max(fb.horizontalAdvance(name), fs.horizontalAdvance(price)) + 2 * pad
            tw = min(want, max(rect.width(), 300.0), self.width() - 4.0)
            tag = self._place_tag(rect, tw, th, [b for k, b in enumerate(boxes) if k != n],
                                  placed)
            placed.append(tag)
            path = QPainterPath()
            path.addRoundedRect(tag, 6, 6)
            p.fillPath(path, colour)
            p.setPen(QColor("white"))
            inner = tag.adjusted(pad, 4, -pad, -4)
            p.setFont(bold)
            p.drawText(QRectF(inner.left(), inner.top(), inner.width(), fb.height()),
                       Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
                       fb.elidedText(name, Qt.TextElideMode.ElideRight, inner.width()))
            p.setFont(small)
            p.drawText(QRectF(inner.left(), inner.top() + fb.height(), inner.width(),
                              fs.height()),
                       Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
                       fs.elidedText(price, Qt.TextElideMode.ElideRight, inner.width()))
        p.end()
