"""Reading gallery imports: PaddleClas list files, product CSVs, per-SKU folders, images.

Parsers collect every problem they find and raise one :class:`GalleryImportError` that lists
them with ``file:line``, so staff can fix a list in one go.  :func:`import_gallery` validates
everything, embeds every image, and then writes products and gallery rows in one transaction:
either the whole import lands or nothing does.
"""
from __future__ import annotations

import csv
import hashlib
import io
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator, Mapping, Sequence

import numpy as np

from kiosk.catalog import Catalog, check_barcode, check_sku
from kiosk.embed import Embedder, Embeddings
from kiosk.images import decode_image, load_image, read_image_bytes
from kiosk.money import DEFAULT_CURRENCY, parse_price

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
MAX_LISTED_ERRORS = 20

#: progress(stage, done, total) with stage "check", "embed" or "write".
Progress = Callable[[str, int, int], None]


class GalleryImportError(ValueError):
    """One or more problems in an import; ``errors`` lists them all (``file:line: what``)."""

    def __init__(self, errors: Sequence[str], what: str = "import") -> None:
        self.errors = list(errors)
        if len(self.errors) == 1:  # one problem, one line: it already names file and line
            super().__init__(self.errors[0])
            return
        shown = self.errors[:MAX_LISTED_ERRORS]
        more = len(self.errors) - len(shown)
        head = f"{len(self.errors)} problem{'s' if len(self.errors) != 1 else ''} in {what}:"
        body = "\n".join(f"  {e}" for e in shown)
        tail = f"\n  ... and {more} more" if more else ""
        super().__init__(f"{head}\n{body}{tail}")


@dataclass(frozen=True)
class GalleryEntry:
    path: Path  # absolute
    label: str  # the sku
    line_no: int = 0  # line in the list file; 0 when the entry did not come from a list
    source: Path | None = None  # the list file (or folder) the entry came from

    @property
    def where(self) -> str:
        """``list.txt:12`` for list entries, the image path otherwise (for error messages)."""
        if self.line_no and self.source is not None:
            return f"{self.source}:{self.line_no}"
        return str(self.path)


@dataclass(frozen=True)
class ProductRow:
    sku: str
    name: str
    price: int | None  # fen; None = unpriced
    barcode: str | None = None
    currency: str = DEFAULT_CURRENCY
    line_no: int = 0


# --------------------------------------------------------------------------------------------
# text files


def _decoded_lines(path: Path, errors: list[str]) -> list[tuple[int, str]]:
    """(line number, text) of a UTF-8 file (BOM allowed); undecodable lines become errors."""
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise GalleryImportError([f"{path}: cannot read: {e.strerror or e}"], str(path)) from None
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    elif data.startswith((b"\xff\xfe", b"\xfe\xff")):  # every line would be garbage
        raise GalleryImportError([f"{path}:1: not UTF-8 text (UTF-16); save the file as UTF-8"],
                                 str(path))
    out = []
    for n, raw in enumerate(data.split(b"\n"), 1):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            errors.append(
                f"{path}:{n}: not UTF-8 text (byte 0x{raw[e.start]:02x} at column {e.start + 1}); "
                "save the file as UTF-8"
            )
            continue
        out.append((n, text.rstrip("\r")))
    return out


def _split_list_line(text: str) -> tuple[list[str] | None, str]:
    """Fields of a list line, or (None, why)."""
    if "\t" in text:
        fields = [f.strip() for f in text.split("\t")]
        sep = "TAB"
    else:
        fields = text.split()
        sep = "space"
    if len(fields) == 1:
        if re.search(r"[,;|]", fields[0]):
            return None, "bad separator: expected 'path<TAB>label' (or 'path label'), found no TAB or space"
        return None, "missing label: expected 'path<TAB>label'"
    if len(fields) == 3 and not fields[2].isdigit():
        if sep == "space":
            return None, (
                "bad separator: 3 space-separated columns but the third is not a numeric id; "
                "use a TAB between path and label when either contains spaces"
            )
        return None, f"third column must be a numeric class id, got {fields[2]!r}"
    if len(fields) > 3:
        return None, (
            f"bad separator: {len(fields)} {sep}-separated columns, expected 'path<TAB>label' "
            "(or 'path label id'); use a TAB between path and label when either contains spaces"
        )
    if not fields[0]:
        return None, "missing path"
    if not fields[1]:
        return None, "missing label"
    return fields[:2], ""


def parse_gallery_list(path: str | Path) -> list[GalleryEntry]:
    """Entries of a PaddleClas gallery list.

    Each line is ``path<TAB>label``, ``path label`` or ``path label id`` (the id, a PaddleClas class
    number, is ignored).  Paths are relative to the list file's folder unless absolute.  Blank lines
    and ``#`` comments are skipped.  Raises :class:`GalleryImportError` listing every problem:
    missing column, bad separator, file not found, duplicate path, non-UTF-8 text.
    """
    path = Path(path)
    errors: list[str] = []
    base = path.resolve().parent
    entries: list[GalleryEntry] = []
    seen: dict[Path, int] = {}
    for n, text in _decoded_lines(path, errors):
        if not text.strip() or text.lstrip().startswith("#"):
            continue
        fields, why = _split_list_line(text)
        if fields is None:
            errors.append(f"{path}:{n}: {why}")
            continue
        rel, label = fields
        try:
            label = check_sku(label)
        except ValueError as e:
            errors.append(f"{path}:{n}: bad label: {e}")
            continue
        try:
            image = Path(rel).expanduser()
        except RuntimeError as e:  # ~user of an unknown user
            errors.append(f"{path}:{n}: cannot expand {rel!r}: {e}")
            continue
        image = image if image.is_absolute() else base / image
        image = Path(os.path.normpath(image))
        if image in seen:
            errors.append(f"{path}:{n}: duplicate path {rel} (already on line {seen[image]})")
            continue
        seen[image] = n
        try:
            found = image.is_file()
        except OSError as e:  # e.g. a name too long for the file system
            errors.append(f"{path}:{n}: cannot use path {rel[:80]!r}: {e.strerror or e}")
            continue
        if not found:
            errors.append(f"{path}:{n}: file not found: {rel}")
            continue
        entries.append(GalleryEntry(path=image, label=label, line_no=n, source=path))
    if errors:
        raise GalleryImportError(errors, str(path))
    return entries


def scan_folder(folder: str | Path) -> list[GalleryEntry]:
    """Entries of a folder with one subfolder per SKU (subfolder name = label) holding images.

    Images may sit in nested folders below a SKU folder; hidden files and non-image files are ignored.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise GalleryImportError([f"{folder}: not a folder"], str(folder))
    errors: list[str] = []
    entries = []
    for sub in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
        try:
            label = check_sku(sub.name)
        except ValueError as e:
            errors.append(f"{sub}: bad folder name for a sku: {e}")
            continue
        images = sorted(
            p
            for p in sub.rglob("*")
            if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".")
        )
        entries += [GalleryEntry(path=p.resolve(), label=label, source=folder) for p in images]
    if errors:
        raise GalleryImportError(errors, str(folder))
    return entries


# --------------------------------------------------------------------------------------------
# products CSV

_REQUIRED = ("sku", "name", "price")
_OPTIONAL = ("barcode", "currency")


def parse_products_csv(path: str | Path) -> dict[str, ProductRow]:
    """Products from a CSV with header ``sku,name,price`` (+ optional ``barcode``, ``currency``).

    UTF-8 with or without BOM; extra columns are ignored.  An empty price or barcode means "not
    given": :func:`import_gallery` leaves a new product unpriced and keeps an existing one's.
    Raises :class:`GalleryImportError` listing every bad line.
    """
    path = Path(path)
    errors: list[str] = []
    lines = _decoded_lines(path, errors)
    if errors:
        raise GalleryImportError(errors, str(path))
    text = "\n".join(t for _, t in lines)
    reader = csv.reader(io.StringIO(text, newline=""))
    header: list[str] | None = None
    rows: dict[str, ProductRow] = {}
    sku_line: dict[str, int] = {}
    barcode_line: dict[str, tuple[int, str]] = {}
    try:
        for record in reader:
            # csv line numbers count physical lines; the file's own numbers match since lines were
            # joined one-to-one
            n = reader.line_num
            if not any(field.strip() for field in record):
                continue
            if header is None:
                header = [h.strip().lower() for h in record]
                missing = [c for c in _REQUIRED if c not in header]
                if missing:
                    errors.append(
                        f"{path}:{n}: header lacks column(s) {', '.join(missing)}; "
                        f"expected sku,name,price[,barcode][,currency], got {','.join(record)}"
                    )
                    break
                dup = sorted({h for h in header if h and header.count(h) > 1})
                if dup:
                    errors.append(f"{path}:{n}: header repeats column(s) {', '.join(dup)}")
                    break
                continue
            if len(record) < len(header):
                record = record + [""] * (len(header) - len(record))
            values = dict(zip(header, (v.strip() for v in record)))
            problems = []
            sku = values["sku"]
            name = values["name"]
            if not sku:
                problems.append("missing sku")
            if not name:
                problems.append("missing name")
            elif any(ord(c) < 32 for c in name):
                problems.append(f"name {name!r} contains control characters")
            price = None
            if values["price"]:
                try:
                    price = parse_price(values["price"])
                except ValueError as e:
                    problems.append(str(e))
            barcode = values.get("barcode") or None
            if barcode is not None:
                try:
                    barcode = check_barcode(barcode)
                except ValueError as e:
                    problems.append(str(e))
                    barcode = None
            currency = values.get("currency") or DEFAULT_CURRENCY
            if not (len(currency) == 3 and currency.isascii() and currency.isalpha()):
                problems.append(f"currency {currency!r} is not a 3-letter code like CNY")
            currency = currency.upper()
            if sku and sku in sku_line:
                problems.append(f"duplicate sku {sku!r} (already on line {sku_line[sku]})")
            if barcode is not None and barcode in barcode_line:
                other_line, other_sku = barcode_line[barcode]
                problems.append(f"barcode {barcode} already used by {other_sku!r} on line {other_line}")
            if problems:
                errors += [f"{path}:{n}: {p}" for p in problems]
                continue
            try:
                sku = check_sku(sku)
            except ValueError as e:
                errors.append(f"{path}:{n}: {e}")
                continue
            sku_line[sku] = n
            if barcode is not None:
                barcode_line[barcode] = (n, sku)
            rows[sku] = ProductRow(sku=sku, name=name, price=price, barcode=barcode, currency=currency, line_no=n)
    except csv.Error as e:
        errors.append(f"{path}:{reader.line_num}: malformed CSV: {e}")
    if header is None and not errors:
        errors.append(f"{path}: empty file; expected a header sku,name,price")
    if errors:
        raise GalleryImportError(errors, str(path))
    return rows


# --------------------------------------------------------------------------------------------
# images


# --------------------------------------------------------------------------------------------
# import


@dataclass
class ImportReport:
    model_id: str
    products_created: list[str] = field(default_factory=list)
    products_updated: list[str] = field(default_factory=list)
    images_added: int = 0
    images_skipped: int = 0  # already in the gallery for this model
    unpriced: list[str] = field(default_factory=list)  # skus of this import still without a price
    gallery_ids: list[int] = field(default_factory=list)

    def summary(self) -> str:
        parts = [
            f"{len(self.products_created)} products created",
            f"{len(self.products_updated)} updated",
            f"{self.images_added} images added",
        ]
        if self.images_skipped:
            parts.append(f"{self.images_skipped} already in the gallery")
        if self.unpriced:
            parts.append(f"{len(self.unpriced)} unpriced")
        return ", ".join(parts)


@dataclass
class _Planned:
    entry: GalleryEntry
    stored: str  # the file name the gallery row will carry


def _safe_dirname(sku: str) -> str:
    safe = re.sub(r"[^\w.\-]", "_", sku)
    if safe != sku or safe in (".", ".."):
        safe = f"{safe.strip('.') or 'sku'}-{hashlib.sha256(sku.encode()).hexdigest()[:8]}"
    return safe


def _copy_target(copy_to: Path, entry: GalleryEntry, digest: str) -> Path:
    suffix = entry.path.suffix.lower() or ".img"
    return copy_to / _safe_dirname(entry.label) / f"{digest[:32]}{suffix}"


def _batches(items: Sequence, size: int) -> Iterator[Sequence]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def import_gallery(
    catalog: Catalog,
    entries: Iterable[GalleryEntry],
    products: Mapping[str, ProductRow] | None,
    embedder: Embedder,
    copy_to: str | Path | None = None,
    *,
    batch_size: int = 32,
    progress: Progress | None = None,
    role: str = "system",
) -> ImportReport:
    """Import gallery images (and product rows) into ``catalog``; all or nothing.

    1. check: labels, duplicate files, barcodes against the catalogue, every image decodes;
    2. embed every image with ``embedder`` in batches of ``batch_size``;
    3. copy images under ``copy_to/<sku>/<content hash>.<ext>`` when ``copy_to`` is given
       (otherwise the gallery stores the absolute source paths);
    4. write products and gallery rows in one transaction.

    A label without a CSV row becomes a product named by its label, unpriced (unless it exists).
    Products given in ``products`` are created or updated (name, currency, and price and barcode
    where given; a barcode may move from one product of the import to another).
    Images already in the gallery for this sku and model are skipped.  Any problem raises
    (:class:`GalleryImportError` for bad input) and leaves the catalogue and ``copy_to`` as they were.

    Audited by ``role`` in the same transaction: each product created or changed (price
    changes with the price before and after) and one ``gallery_import`` row with the counts.
    """
    entries = list(entries)
    products = dict(products or {})
    copy_to = Path(copy_to).resolve() if copy_to is not None else None
    model_id, dim = embedder.model_id, int(embedder.dim)
    errors: list[str] = []

    def tick(stage: str, done: int, total: int) -> None:
        if progress is not None:
            progress(stage, done, total)

    # -- 1. check everything ------------------------------------------------------------------
    stored_dim = catalog.model_dim(model_id)
    if stored_dim is not None and stored_dim != dim:
        errors.append(f"model {model_id!r} has {stored_dim}-d embeddings in the catalogue, the embedder makes {dim}-d")
    existing = catalog.get_products(set(products) | {e.label for e in entries})
    for row in products.values():
        if row.barcode is not None:
            owner = catalog.find_by_barcode(row.barcode)
            # a barcode may move between two products of this import, not away from any other product
            if owner is not None and owner.sku != row.sku and owner.sku not in products:
                errors.append(
                    f"products line {row.line_no}: barcode {row.barcode} of {row.sku!r} already belongs "
                    f"to {owner.sku!r} in the catalogue"
                )
    seen: dict[Path, GalleryEntry] = {}
    planned: list[_Planned] = []
    already = {(r["sku"], r["file"]) for r in catalog.gallery_rows(model_id=model_id)} if entries else set()
    skipped = 0
    planned_keys: set[tuple[str, str]] = set()
    for i, entry in enumerate(entries):
        tick("check", i, len(entries))
        if entry.path in seen:
            errors.append(f"{entry.where}: duplicate image {entry.path} (also at {seen[entry.path].where})")
            continue
        seen[entry.path] = entry
        try:
            check_sku(entry.label)
            data = read_image_bytes(entry.path)
            decode_image(data, entry.path)
        except ValueError as e:
            errors.append(f"{entry.where}: {e}")
            continue
        digest = hashlib.sha256(data.tobytes()).hexdigest()
        stored = str(_copy_target(copy_to, entry, digest)) if copy_to is not None else str(entry.path.resolve())
        key = (entry.label, stored)
        if key in already or key in planned_keys:  # same content twice under one sku when copying
            skipped += 1
            continue
        planned_keys.add(key)
        planned.append(_Planned(entry, stored))
    tick("check", len(entries), len(entries))
    if errors:
        raise GalleryImportError(errors, "gallery import")

    # -- 2. embed -----------------------------------------------------------------------------
    vectors = np.zeros((len(planned), dim), np.float32)
    done = 0
    tick("embed", 0, len(planned))
    for batch in _batches(planned, max(1, batch_size)):
        crops = [load_image(p.entry.path) for p in batch]
        emb = embedder.embed(crops)
        if emb.model_id != model_id or emb.vectors.shape != (len(batch), dim):
            raise RuntimeError(
                f"embedder {model_id!r} returned {emb.vectors.shape} from {emb.model_id!r} "
                f"for {len(batch)} crops, expected ({len(batch)}, {dim})"
            )
        vectors[done : done + len(batch)] = emb.vectors
        done += len(batch)
        tick("embed", done, len(planned))
    if not np.isfinite(vectors).all():
        raise RuntimeError(f"embedder {model_id!r} returned NaN or infinite values")

    # -- 3. copy, 4. write ----------------------------------------------------------------------
    created_files: list[Path] = []
    created_dirs: list[Path] = []
    report = ImportReport(model_id=model_id, images_skipped=skipped)
    try:
        if copy_to is not None:
            for p in planned:
                target = Path(p.stored)
                if target.exists():
                    continue  # same content already stored (file names are content hashes)
                if not target.parent.exists():
                    for parent in reversed([target.parent, *target.parent.parents]):
                        if not parent.exists():
                            parent.mkdir()
                            created_dirs.append(parent)
                fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".import-", suffix=target.suffix)
                os.close(fd)
                try:
                    shutil.copyfile(p.entry.path, tmp)
                    os.replace(tmp, target)
                except BaseException:
                    Path(tmp).unlink(missing_ok=True)
                    raise
                created_files.append(target)

        tick("write", 0, len(planned))
        with catalog.transaction():
            # free barcodes that move to another product of this import before assigning them
            claimed = {row.barcode: sku for sku, row in products.items() if row.barcode is not None}
            for sku, old in existing.items():
                if claimed.get(old.barcode, sku) != sku:
                    catalog.upsert_product(sku, barcode=None, role=role)
            for sku, row in products.items():
                # an empty price or barcode keeps what the catalogue has (new products: unpriced)
                fields = dict(name=row.name, currency=row.currency)
                if row.price is not None:
                    fields["price"] = row.price
                if row.barcode is not None:
                    fields["barcode"] = row.barcode
                old = existing.get(sku)
                new = catalog.upsert_product(sku, **fields, role=role)
                if old is None:
                    report.products_created.append(sku)
                elif new != old:
                    report.products_updated.append(sku)
            by_sku: dict[str, list[int]] = {}
            for idx, p in enumerate(planned):
                by_sku.setdefault(p.entry.label, []).append(idx)
            for sku, idxs in by_sku.items():
                if sku not in products and sku not in existing:
                    catalog.add_product(sku, sku, None, role=role)
                    report.products_created.append(sku)
                report.gallery_ids += catalog.add_gallery_images(
                    sku, [planned[i].stored for i in idxs], Embeddings(vectors[idxs], model_id),
                    audit_action=None,  # one gallery_import row below says it all
                )
            touched = set(products) | {e.label for e in entries}
            report.unpriced = sorted(
                sku for sku, prod in catalog.get_products(touched).items() if prod.price is None
            )
            catalog.audit(
                "gallery_import", None, role=role, detail=model_id,
                after={"images": len(report.gallery_ids), "skipped": skipped,
                       "products_created": len(report.products_created),
                       "products_updated": len(report.products_updated),
                       "skus": sorted({planned[i].entry.label for i in range(len(planned))})[:50]},
            )
        report.images_added = len(report.gallery_ids)
        tick("write", len(planned), len(planned))
    except BaseException:
        for f in created_files:
            f.unlink(missing_ok=True)
        for d in reversed(created_dirs):
            try:
                d.rmdir()
            except OSError:
                pass
        raise
    return report
