"""``kiosk`` command line.  Other tools script against it: keep command names and JSON keys."""
from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
from pathlib import Path

os.environ.setdefault("GLOG_minloglevel", "2")

log = logging.getLogger("kiosk")


class CliError(Exception):
    """A user-facing error: printed without a traceback, exit status 2."""


# ---------------------------------------------------------------- helpers
def _demo_db() -> Path:
    from .paths import data_dir

    return data_dir() / "demo" / "catalog.db"


def resolve_db(arg: str | None, embedder=None) -> Path:
    """--db, else $KIOSK_DB, else the store catalogue if it exists, else the demo catalogue
    (built on first use, with ``embedder`` when given)."""
    from .paths import default_db_path

    if arg:
        return Path(arg)
    if os.environ.get("KIOSK_DB"):
        return Path(os.environ["KIOSK_DB"])
    if default_db_path().exists():
        return default_db_path()
    db = _demo_db()
    if not db.exists():
        from .demo_catalog import build_demo_catalog

        print(f"no catalogue yet: using the built-in demo catalogue at {db}", file=sys.stderr)
        build_demo_catalog(db, embedder=embedder)
    return db


def _progress(label: str):
    if not sys.stderr.isatty():
        return None

    def show(done: int, total: int) -> None:
        print(f"\r{label}: {done}/{total}", end="" if done < total else "\n",
              file=sys.stderr, flush=True)

    return show


def _pad(text: str, width: int) -> str:
    """Left-align ``text`` in ``width`` terminal columns (CJK characters take two)."""
    import unicodedata

    cols = sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)
    return text + " " * max(0, width - cols)


def _print_report(report: dict, as_json: bool) -> None:
    if as_json:
        _print_json(report)
    else:
        for key, value in report.items():
            print(f"{key:>20}: {value}")


def _print_json(obj) -> None:
    print(json.dumps(obj, ensure_ascii=False))


# ---------------------------------------------------------------- commands
def cmd_setup(args) -> int:
    from .embed.effnet_lite import ensure_converted

    path = ensure_converted()
    print(f"model ready: {path}")
    db = resolve_db(None)
    print(f"catalogue: {db}")
    return 0


def cmd_gallery_import(args) -> int:
    from .catalog import Catalog
    from .embed import load_embedder
    from .engine import Engine
    from .gallery_io import import_gallery, parse_gallery_list, parse_products_csv, scan_folder

    src = Path(args.source)
    if not src.exists():
        raise CliError(f"{src}: no such file or folder")
    entries = scan_folder(src) if src.is_dir() else parse_gallery_list(src)
    products = parse_products_csv(Path(args.products)) if args.products else None
    if not entries and not products:
        raise CliError(f"{src}: nothing to import: no images {'found' if src.is_dir() else 'listed'}")
    embedder = load_embedder(args.model)
    db = Path(args.db)
    catalog = Catalog(db)
    copy_to = None if args.no_copy else db.parent / "gallery"
    show = _progress("import")
    try:
        report = import_gallery(catalog, entries, products, embedder, copy_to=copy_to, role="cli",
                                progress=(lambda stage, done, total: show(done, total)) if show else None)
    finally:  # also on a refused import: no connection left open
        catalog.close()
    Engine.open(db, embedder=embedder).close()  # brings the vector index up to date
    if args.json:
        _print_json(dataclasses.asdict(report))  # ImportReport has no to_dict
    else:
        print(report.summary())
    return 0


def cmd_gallery_add(args) -> int:
    from .engine import Engine
    from .gallery_io import load_image
    from .money import parse_price
    from .text import make_text_reader

    # the new views' pack text is read as a staff enrolment in the window reads it
    engine = Engine.open(Path(args.db), text_reader=make_text_reader(), text_backfill_limit=0)
    try:
        images = [load_image(Path(p)) for p in args.images]
        cat = engine.catalog
        with cat.transaction():  # a new product appears with its images or not at all
            if cat.get_product(args.sku) is None:
                if not args.name:
                    raise CliError(f"new product {args.sku!r}: --name is required")
                cat.add_product(args.sku, args.name,
                                price=parse_price(args.price) if args.price else None,
                                barcode=args.barcode, role="cli")
            if args.tray:  # photos of the product alone on the tray: cut out like items
                ids = engine.enrol(args.sku, images, role="cli")
            else:
                ids = engine.add_images(args.sku, images,
                                        [str(Path(p).resolve()) for p in args.images], role="cli")
        print(f"{args.sku}: {len(ids)} gallery image(s) added")
    finally:
        engine.close()
    return 0


def cmd_read_text(args) -> int:
    from .engine import Engine
    from .text import TextReader

    db = resolve_db(args.db)
    engine = Engine.open(db, text_reader=TextReader(), text_backfill_limit=0)
    try:
        todo = engine.catalog.files_without_words(engine.text_reader.reader_id)
        print(f"{len(todo)} gallery image(s) to read", file=sys.stderr)
        n = engine.read_missing_text(None, progress=_progress("reading packs"))
    finally:
        engine.close()
    print(f"pack text read on {n} gallery image(s)")
    return 0


def cmd_gallery_remove(args) -> int:
    from .engine import Engine

    engine = Engine.open(Path(args.db))
    try:
        n = engine.remove_product(args.sku, role="cli")
    except KeyError as exc:
        raise CliError(str(exc.args[0])) from None
    finally:
        engine.close()
    print(f"{args.sku}: removed with {n} gallery image(s)")
    return 0


def cmd_gallery_list(args) -> int:
    from .catalog import Catalog
    from .money import format_price

    cat = Catalog(Path(args.db))
    rows = []
    counts = cat.gallery_counts()
    for p in cat.list_products(active_only=False):
        rows.append({"sku": p.sku, "name": p.name, "price": p.price, "currency": p.currency,
                     "barcode": p.barcode, "active": p.active, "images": counts.get(p.sku, 0)})
    cat.close()
    if args.json:
        _print_json(rows)
        return 0
    for r in rows:
        price = format_price(r["price"], r["currency"]) if r["price"] is not None else "unpriced"
        flag = "" if r["active"] else "  (inactive)"
        print(f"{r['sku']:<24} {_pad(r['name'], 28)} {price:>10} {r['images']:>4} images{flag}")
    return 0


def cmd_backup(args) -> int:
    from .backup import BackupError, backup

    try:
        manifest = backup(Path(args.db), Path(args.dest), role="cli")
    except BackupError as exc:
        raise CliError(str(exc)) from None
    if args.json:
        _print_json({k: manifest[k] for k in ("created_at", "schema_version", "counts")}
                    | {"dest": args.dest, "files": len(manifest["files"]),
                       "external": len(manifest["external"]), "missing": len(manifest["missing"])})
        return 0
    counts = manifest["counts"]
    print(f"backup written to {args.dest}: {counts.get('products', 0)} products, "
          f"{counts.get('transactions', 0)} sales, {len(manifest['files'])} files")
    if manifest["external"]:
        print(f"  {len(manifest['external'])} gallery image(s) outside the data folder were not "
              "copied (they stay where they are)")
    if manifest["missing"]:
        print(f"  warning: {len(manifest['missing'])} gallery image(s) were missing", file=sys.stderr)
    return 0


def cmd_restore(args) -> int:
    from .backup import BackupError, restore

    try:
        report = restore(Path(args.src), Path(args.db), role="cli")
    except BackupError as exc:
        raise CliError(str(exc)) from None
    if args.json:
        _print_json(report)
        return 0
    counts = report["counts"]
    print(f"restored {args.src} (made {report['created_at']}) into {args.db}: "
          f"{counts.get('products', 0)} products, {counts.get('transactions', 0)} sales, "
          f"{report['files']} files")
    if report["previous"]:
        print(f"  the previous catalogue is kept at {report['previous']}")
    print("  the vector index is rebuilt from the stored embeddings at the next start")
    return 0


def cmd_recognize(args) -> int:
    from .engine import Engine
    from .gallery_io import load_image
    from .money import format_price

    db = resolve_db(args.db)
    background = load_image(Path(args.background)) if args.background else None
    engine = Engine.open(db, background=background)
    try:
        for n, path in enumerate(args.images):
            result = engine.recognize(load_image(Path(path)))
            if args.json:
                out = result.to_dict()
                out["image"] = str(path)
                _print_json(out)
                continue
            if n:
                print()
            print(f"{path}: {len(result.items)} item(s)")
            for item in result.items:
                label = item.name if not item.unknown else "UNKNOWN (call the cashier)"
                best = ", ".join(f"{c.name} {c.score:.2f}" for c in item.candidates[:3])
                print(f"  {str(list(item.box)):<24} {_pad(label, 28)} score {item.score:.2f}"
                      f"   [{best}]")
            r = result.receipt
            for line in r.lines:
                unit = (format_price(line.unit_price, r.currency) if line.unit_price is not None
                        else "unpriced")
                print(f"    {_pad(line.name, 28)} x{line.qty:<3} {unit:>9}"
                      f" {format_price(line.amount, r.currency):>10}")
            print(f"    {_pad('TOTAL', 28)} {format_price(r.total, r.currency):>24}")
    finally:
        engine.close()
    return 0


def cmd_eval(args) -> int:
    from .decide import Decider
    from .embed import load_embedder
    from .engine import model_threshold
    from .evaluate import evaluate_lists

    embedder = load_embedder(args.model)
    threshold = args.threshold if args.threshold is not None else model_threshold(embedder)
    reader = None
    if args.text:
        from .text import TextReader

        reader = TextReader()
    report = evaluate_lists(embedder, Path(args.gallery), Path(args.query),
                            Decider(k=args.k, threshold=threshold),
                            progress=_progress("embedding"), text_reader=reader)
    _print_report(report.to_dict(), args.json)
    return 0


def cmd_eval_trays(args) -> int:
    from .embed import load_embedder
    from .tray_eval import run_tray_eval

    def progress(stage: str, done: int, total: int) -> None:
        print(f"\r{stage}: {done}/{total}", end="" if done < total else "\n",
              file=sys.stderr, flush=True)

    embedder = load_embedder(args.model)
    reader = None
    if args.text:
        from .text import TextReader

        reader = TextReader()
    report = run_tray_eval(embedder, Path(args.gallery), Path(args.query), n_trays=args.trays,
                           seed=args.seed, threshold=args.threshold, progress=progress,
                           text_reader=reader)
    _print_report(report.to_dict(), args.json)
    return 0


def cmd_split_dev(args) -> int:
    from .splits import dev_split, write_split

    split = dev_split(Path(args.dataset), seed=args.seed)
    for name, f in write_split(split, Path(args.out)).items():
        print(f"{f}: {len(split[name])} images, {len({l for _, l in split[name]})} SKUs")
    return 0


def cmd_train(args) -> int:
    from .train import TrainConfig, run_training

    cfg = TrainConfig(inputs=tuple(args.inputs.split(",")), dim=args.dim, margin=args.margin,
                      epochs=args.epochs, views=args.views, seed=args.seed, blend=args.blend,
                      backbone=args.backbone, plain=tuple(args.plain.split(",")))
    queries = dict(q.split("=", 1) if "=" in q else (Path(q).stem, q) for q in args.query)
    if queries and not args.gallery:
        raise CliError("--query needs --gallery")
    out = Path(args.out) if args.out else None
    if out is not None and out.exists():
        raise CliError(f"{out} already exists: choose a new model folder")
    report = run_training([Path(t) for t in args.train], out, cfg,
                          gallery_list=Path(args.gallery) if args.gallery else None,
                          query_lists={k: Path(v) for k, v in queries.items()},
                          threshold=args.threshold,
                          save_neck_to=Path(args.save_neck) if args.save_neck else None,
                          log_fn=lambda m: print(m, file=sys.stderr, flush=True))
    if args.json:
        _print_json(report)
    else:
        print(json.dumps({k: v for k, v in report.items() if k != "epochs"}, indent=2,
                         ensure_ascii=False))
    return 0


def cmd_bench(args) -> int:
    if getattr(args, "soak", None) is not None:
        from .soak import format_report, run_gui_soak, run_soak

        soak = run_gui_soak if getattr(args, "gui", False) else run_soak
        result = soak(args.soak, progress=lambda msg: print(msg, file=sys.stderr, flush=True))
        if args.json:
            _print_json(result)
        else:
            print(format_report(result))
        return 0 if result["pass"] else 1
    if getattr(args, "gui", False):
        from .ui.bench_gui import run_gui_bench

        result = run_gui_bench(progress=lambda msg: print(msg, file=sys.stderr),
                               model_process=not args.model_in_process)
        result["model_process"] = not args.model_in_process
        if args.json:
            _print_json(result)
        else:
            print(json.dumps(result, indent=2, ensure_ascii=False))
        return 0
    from .bench import run_bench

    result = run_bench(quick=args.quick, progress=lambda msg: print(msg, file=sys.stderr))
    if args.json:
        _print_json(result)
    else:
        print(json.dumps(result, indent=2, ensure_ascii=False))
    return 0


def cmd_staff_pin(args) -> int:
    """Set the staff PIN from the kiosk PC (a technician with a shell), not the shop floor."""
    import getpass

    from .catalog import Catalog
    from .staff_auth import PinFormatError, StaffAuth, check_pin

    db = resolve_db(args.db)
    if args.stdin or not sys.stdin.isatty():
        lines = sys.stdin.read().splitlines()
        pin = lines[0].strip() if lines else ""
        again = pin
    else:
        pin = getpass.getpass("new staff PIN (4-8 digits): ")
        again = getpass.getpass("the same PIN again: ")
    if pin != again:
        raise CliError("the two PINs differ; nothing changed")
    try:
        check_pin(pin)
    except PinFormatError as exc:
        raise CliError(f"{exc}; nothing changed") from None
    with Catalog(db) as catalog:
        auth = StaffAuth(catalog)
        if auth.has_pin() and not args.reset:
            raise CliError(f"{db} already has a staff PIN: add --reset to replace it")
        auth.set_pin(pin, role="cli")
    print(f"staff PIN {'replaced' if args.reset else 'set'} for {db}")
    return 0


def run_gui(args) -> int:
    from .ui.app import main as gui_main

    return gui_main(sys.argv[:1], settings_path=getattr(args, "settings", None),
                    fullscreen=bool(getattr(args, "fullscreen", False)),
                    first_receipt_exit=getattr(args, "first_receipt_exit", None))


def cmd_self_test(args) -> int:
    from .selftest import main as self_test

    settings = None
    try:
        from .settings import default_settings_path, load_settings

        settings = load_settings(default_settings_path())
    except Exception as exc:  # noqa: BLE001 - reported, the self-test goes on with defaults
        print(f"kiosk: warning: settings not used: {exc}", file=sys.stderr)
    db = None
    if settings is not None and settings.paths.db:
        db = settings.db_path()
    return self_test(db_path=db, as_json=bool(getattr(args, "top_json", False)),
                     settings=settings)


# ---------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    from .paths import default_db_path

    from . import __version__

    p = argparse.ArgumentParser(
        prog="kiosk", description="袋鼯麻麻 self-checkout kiosk (no command: start the kiosk)")
    p.add_argument("-v", "--verbose", action="store_true", help="log progress")
    p.add_argument("--version", action="version", version=f"kiosk {__version__}")
    p.add_argument("--data-dir", metavar="DIR",
                   help="the store's data folder: catalogue, gallery, index, transactions, "
                        "settings, logs (default: $KIOSK_DATA_DIR, else "
                        "$XDG_DATA_HOME/kiosk = ~/.local/share/kiosk)")
    p.add_argument("--self-test", action="store_true",
                   help="check models, demo recognition, catalogue, index and Qt headless; "
                        "exit status 0 = passed")
    p.add_argument("--json", dest="top_json", action="store_true",
                   help="with --self-test: the report as one JSON object")
    p.add_argument("--fullscreen", action="store_true",
                   help="start the kiosk full screen (as ui.fullscreen = true)")
    sub = p.add_subparsers(dest="command")

    s = sub.add_parser("setup", help="convert the models and build the demo catalogue")
    s.set_defaults(func=cmd_setup)

    s = sub.add_parser("read-text", help="read the pack text of every gallery image not read "
                                          "yet (after `gallery import`; the window reads at "
                                          "most 300 when it opens a catalogue)")
    s.add_argument("--db")
    s.set_defaults(func=cmd_read_text)

    g = sub.add_parser("gallery", help="manage the product gallery").add_subparsers(
        dest="gallery_command", required=True)
    db_default = str(default_db_path())
    s = g.add_parser("import", help="import a PaddleClas gallery list or a folder per SKU")
    s.add_argument("--db", default=db_default)
    s.add_argument("source", metavar="LIST_OR_DIR")
    s.add_argument("--products", metavar="CSV", help="sku,name,price[,barcode] rows")
    s.add_argument("--model", help="recognition model folder (default: built-in)")
    s.add_argument("--no-copy", action="store_true",
                   help="reference the images where they are instead of copying them")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_gallery_import)
    s = g.add_parser("add", help="add gallery images for a product (created if new)")
    s.add_argument("--db", default=db_default)
    s.add_argument("--sku", required=True)
    s.add_argument("--name")
    s.add_argument("--price", help="price in yuan, e.g. 3.50")
    s.add_argument("--barcode")
    s.add_argument("--tray", action="store_true",
                   help="the images are tray photos with the product alone on the tray")
    s.add_argument("images", nargs="+", metavar="IMAGE")
    s.set_defaults(func=cmd_gallery_add)
    s = g.add_parser("remove", help="delete a product and its gallery images")
    s.add_argument("--db", default=db_default)
    s.add_argument("sku")
    s.set_defaults(func=cmd_gallery_remove)
    s = g.add_parser("list", help="list products")
    s.add_argument("--db", default=db_default)
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_gallery_list)

    s = sub.add_parser("backup", help="back up the catalogue, sales and pictures (safe while "
                                      "the kiosk runs)")
    s.add_argument("--db", default=db_default)
    s.add_argument("--json", action="store_true")
    s.add_argument("dest", metavar="DEST", help="a new folder, or a .tar, .tar.gz or .zip file")
    s.set_defaults(func=cmd_backup)
    s = sub.add_parser("restore", help="check a backup, then replace the catalogue with it "
                                       "(close the kiosk first)")
    s.add_argument("--db", default=db_default)
    s.add_argument("--json", action="store_true")
    s.add_argument("src", metavar="SRC", help="a backup folder or archive")
    s.set_defaults(func=cmd_restore)

    s = sub.add_parser("recognize", help="recognise the items on tray images")
    s.add_argument("--db", help="catalogue (default: the store's, else the demo)")
    s.add_argument("--background", metavar="EMPTY_TRAY_IMAGE")
    s.add_argument("--json", action="store_true", help="one JSON object per image (JSON Lines)")
    s.add_argument("images", nargs="+", metavar="IMAGE")
    s.set_defaults(func=cmd_recognize)

    s = sub.add_parser("eval", help="retrieval accuracy on gallery/query lists")
    s.add_argument("--gallery", required=True, metavar="LIST")
    s.add_argument("--query", required=True, metavar="LIST")
    s.add_argument("--model", help="recognition model folder (default: built-in)")
    s.add_argument("--threshold", type=float)
    s.add_argument("--k", type=int, default=5)
    s.add_argument("--text", action="store_true",
                   help="also read the packs (PP-OCRv4) and re-rank close candidates by their "
                        "text, as the kiosk does")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_eval)

    s = sub.add_parser("eval-trays", help="checkout accuracy on synthetic trays of query photos")
    s.add_argument("--gallery", required=True, metavar="LIST", help="photos to enrol")
    s.add_argument("--query", required=True, metavar="LIST", help="photos to put on the trays")
    s.add_argument("--trays", type=int, default=50)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--model", help="recognition model folder (default: built-in)")
    s.add_argument("--threshold", type=float)
    s.add_argument("--json", action="store_true")
    s.add_argument("--text", action="store_true",
                   help="read the packs (PP-OCRv4) as the kiosk does")
    s.set_defaults(func=cmd_eval_trays)

    s = sub.add_parser("staff-pin", help="set the staff PIN (asked twice; a technician's job)")
    s.add_argument("--db", help="catalogue (default: the store's, else the demo)")
    s.add_argument("--reset", action="store_true", help="replace an existing PIN")
    s.add_argument("--stdin", action="store_true", help="read the PIN from standard input")
    s.set_defaults(func=cmd_staff_pin)

    s = sub.add_parser("gui", help="start the self-checkout kiosk (the default)")
    s.add_argument("--settings", metavar="TOML", help="settings file (default: DATA_DIR/settings.toml)")
    s.add_argument("--fullscreen", action="store_true", default=argparse.SUPPRESS,
                   help="start full screen (as ui.fullscreen = true)")
    s.add_argument("--first-receipt-exit", type=float, metavar="SECONDS",
                   help="smoke test / start-up timing: quit once the first receipt with items "
                        "is on screen and print how long after launch that was (exit 1 if "
                        "none came within SECONDS)")
    s.set_defaults(func=run_gui)

    s = sub.add_parser("split-dev", help="honest train/validation lists from the dev photos")
    s.add_argument("dataset", help="folder with images.csv (e.g. grocerystore-dev)")
    s.add_argument("--out", required=True)
    s.add_argument("--seed", type=int, default=0)
    s.set_defaults(func=cmd_split_dev)

    s = sub.add_parser("train", help="train an embedding neck (ArcMargin) and export a model")
    s.add_argument("--train", action="append", required=True, metavar="LIST",
                   help="PaddleClas list(s) of labelled training images")
    s.add_argument("--gallery", metavar="LIST", help="validation gallery")
    s.add_argument("--query", action="append", default=[], metavar="[NAME=]LIST",
                   help="validation queries; 'known' calibrates, 'unknown' = not enrolled")
    s.add_argument("--out", metavar="MODEL_DIR", help="export the trained model here")
    s.add_argument("--save-neck", metavar="NPZ", help="also save the trained neck alone")
    s.add_argument("--inputs", default="gap,gem,mid,low", help="descriptors: gap,gem,mid,low")
    s.add_argument("--blend", type=float, default=1.0,
                   help="weight of the plain ImageNet descriptor beside the neck (0: neck only)")
    s.add_argument("--threshold", type=float,
                   help="use this unknown threshold instead of calibrating one")
    s.add_argument("--dim", type=int, default=512)
    s.add_argument("--margin", type=float, default=0.3)
    s.add_argument("--epochs", type=int, default=30)
    s.add_argument("--views", type=int, default=8, help="augmented views per image")
    s.add_argument("--backbone", default="lite0", choices=["lite0", "mnv2", "lite0+mnv2"],
                   help="frozen ImageNet trunk(s): EfficientNet-Lite0, MobileNetV2 (mgap), or both")
    s.add_argument("--plain", default="gap",
                   help="plain descriptors kept beside the neck output with --blend (e.g. gap,mgap)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_train)

    s = sub.add_parser("bench", help="per-stage timings and a 100k-vector gallery")
    s.add_argument("--json", action="store_true")
    s.add_argument("--quick", action="store_true", help="10k vectors instead of 100k")
    s.add_argument("--gui", action="store_true",
                   help="the real kiosk window offscreen: preview fps, settle-to-receipt "
                        "latency, GUI-thread stalls")
    s.add_argument("--model-in-process", action="store_true",
                   help="with --gui: run the model in the GUI's process (for comparison)")
    s.add_argument("--soak", type=float, metavar="MINUTES",
                   help="run the sped-up demo checkout (capture, recognition, sales) this long "
                        "and check memory, threads and open files for growth (exit 1 on FAIL); "
                        "with --gui: the real window offscreen, in real time")
    s.set_defaults(func=cmd_bench)
    return p


def _early_data_dir(argv: list[str]) -> None:
    """Apply ``--data-dir`` before the parser is built (its defaults live in the data folder)."""
    for n, arg in enumerate(argv):
        if arg == "--":
            return
        if arg.startswith("--data-dir="):
            value = arg.split("=", 1)[1]
        elif arg == "--data-dir" and n + 1 < len(argv):
            value = argv[n + 1]
        else:
            continue
        if not value:
            raise CliError("--data-dir needs a folder")
        os.environ["KIOSK_DATA_DIR"] = str(Path(value).expanduser().resolve())
        return


def main(argv: list[str] | None = None) -> int:
    os.umask(0o077)  # everything the kiosk writes (catalogue, pictures, backups) is owner-only
    from .logs import setup_logging

    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["_embed-server"]:  # the bundle's embedding child process (kiosk.embed.remote)
        from .embed.remote import serve

        return serve(argv[1:])
    try:
        _early_data_dir(argv)
    except CliError as exc:
        print(f"kiosk: error: {exc}", file=sys.stderr)
        return 2
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    if args.self_test:
        return cmd_self_test(args)
    if not getattr(args, "func", None):
        return run_gui(args)  # plain ``kiosk``: the kiosk itself
    try:
        return args.func(args)
    except (CliError, ValueError, KeyError, FileNotFoundError) as exc:
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"kiosk: error: {msg}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
