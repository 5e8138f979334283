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
# set by main() while a command (not the window) runs: the settings file it read
_CONTEXT: dict = {"settings": None}


def _existing(db: Path, where: str) -> Path:
    """``db`` when it is a catalogue file; else the one-line error naming it."""
    from kiosk.assemble import existing_db

    return existing_db(db, where)


def resolve_db(arg: str | None, embedder=None, *, must_exist: bool = False,
               progress=None) -> Path:
    """:func:`kiosk.assemble.resolve_db` with the settings file of the running command."""
    from kiosk.assemble import resolve_db as resolve

    return resolve(arg, embedder, settings=_CONTEXT["settings"], must_exist=must_exist,
                   progress=progress)


def _store_db(args) -> Path:
    """The catalogue a command that may create one writes to: --db, else the settings
    file's ``[paths] db``, else $KIOSK_DB, else the store catalogue (never the demo)."""
    from kiosk.assemble import store_db

    return store_db(getattr(args, "db", None), _CONTEXT["settings"])


def _settings():
    """The settings file of the running command, else the defaults."""
    from kiosk.settings import Settings

    return _CONTEXT["settings"] or Settings()


def _load_settings(path: str | None, *, strict: bool = True):
    """The settings file (``--settings``, else DATA_DIR/settings.toml); its ``[paths]
    data_dir`` becomes the data folder of this run.  A bad file is a :class:`CliError`
    (``strict``) or a warning."""
    from kiosk.settings import SettingsError, load_settings

    try:
        if path and not Path(path).is_file():
            raise SettingsError(f"{path}: no such settings file")
        settings = load_settings(path)
    except SettingsError as exc:
        if strict:
            raise CliError(str(exc)) from None
        print(f"kiosk: warning: settings not used: {exc}", file=sys.stderr)
        return None
    if settings.paths.data_dir:
        os.environ["KIOSK_DATA_DIR"] = str(settings.data_dir().resolve())
    return settings


def _stdout_closed() -> bool:
    """Has the reader of standard output gone away (a pipe with no reader left)?"""
    import select

    try:
        fd = sys.stdout.fileno()
        poll = select.poll()
        poll.register(fd, select.POLLOUT)
        return any(ev & (select.POLLERR | select.POLLHUP) for _fd, ev in poll.poll(0))
    except (AttributeError, OSError, ValueError):
        return True  # cannot tell: it was a write that failed


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
    from kiosk.embed.effnet_lite import ensure_converted

    path = ensure_converted()
    print(f"model ready: {path}")
    db = resolve_db(None)
    print(f"catalogue: {db}")
    return 0


def cmd_gallery_import(args) -> int:
    from kiosk.assemble import load_model, open_engine
    from kiosk.catalog import Catalog
    from kiosk.catalog.gallery_io import import_gallery, parse_gallery_list, parse_products_csv, scan_folder

    src = Path(args.source)
    if not src.exists():
        raise CliError(f"{src}: no such file or folder")
    entries = scan_folder(src) if src.is_dir() else parse_gallery_list(src)
    products = parse_products_csv(Path(args.products)) if args.products else None
    if not entries and not products:
        raise CliError(f"{src}: nothing to import: no images {'found' if src.is_dir() else 'listed'}")
    embedder = load_model(model=args.model)
    db = _store_db(args)  # may not exist yet: importing creates the store catalogue
    catalog = Catalog(db)
    copy_to = None if args.no_copy else db.parent / "gallery"
    show = _progress("import")
    try:
        report = import_gallery(catalog, entries, products, embedder, copy_to=copy_to, role="cli",
                                progress=(lambda stage, done, total: show(done, total)) if show else None)
    finally:  # also on a refused import: no connection left open
        catalog.close()
    open_engine(db, _settings(), embedder=embedder).close()  # brings the vector index up to date
    if args.json:
        _print_json(dataclasses.asdict(report))  # ImportReport has no to_dict
    else:
        print(report.summary())
    return 0


def cmd_gallery_add(args) -> int:
    from kiosk.assemble import load_model, open_engine, text_reader_for
    from kiosk.images import load_image
    from kiosk.money import parse_price

    # the new views' pack text is read as a staff enrolment in the window reads it
    # the store catalogue (created by a first product); a --db that is not there is a typo
    db = _existing(_store_db(args), "--db") if args.db else _store_db(args)
    settings = _settings()
    embedder = load_model(settings)
    engine = open_engine(db, settings, embedder=embedder,
                         text_reader=text_reader_for(settings, embedder), text_backfill_limit=0)
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
    from kiosk.assemble import open_engine
    from kiosk.text import TextReader

    db = resolve_db(args.db, must_exist=True)
    engine = open_engine(db, _settings(), text_reader=TextReader(), text_backfill_limit=0)
    try:
        todo = engine.catalog.files_without_words(engine.text_reader.reader_id)
        print(f"{len(todo)} gallery image(s) to read", file=sys.stderr)
        n = engine.read_missing_text(None, progress=_progress("reading packs"))
    finally:
        engine.close()
    print(f"pack text read on {n} gallery image(s)")
    return 0


def cmd_gallery_remove(args) -> int:
    from kiosk.assemble import open_engine

    engine = open_engine(_existing(_store_db(args), "--db" if args.db else "the catalogue"),
                         _settings())
    try:
        n = engine.remove_product(args.sku, role="cli")
    except KeyError as exc:
        raise CliError(str(exc.args[0])) from None
    finally:
        engine.close()
    print(f"{args.sku}: removed with {n} gallery image(s)")
    return 0


def cmd_gallery_list(args) -> int:
    from kiosk.catalog import Catalog
    from kiosk.money import format_price

    cat = Catalog(resolve_db(args.db, must_exist=True))
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
    from kiosk.catalog.backup import BackupError, backup

    try:
        manifest = backup(_existing(_store_db(args), "--db" if args.db else "the catalogue"),
                          Path(args.dest), role="cli")
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
    from kiosk.catalog.backup import BackupError, restore

    try:
        report = restore(Path(args.src), _store_db(args), role="cli")
    except BackupError as exc:
        raise CliError(str(exc)) from None
    if args.json:
        _print_json(report)
        return 0
    counts = report["counts"]
    print(f"restored {args.src} (made {report['created_at']}) into {_store_db(args)}: "
          f"{counts.get('products', 0)} products, {counts.get('transactions', 0)} sales, "
          f"{report['files']} files")
    if report["previous"]:
        print(f"  the previous catalogue is kept at {report['previous']}")
    print("  the vector index is rebuilt from the stored embeddings at the next start")
    return 0


def cmd_recognize(args) -> int:
    from kiosk.assemble import open_engine
    from kiosk.images import ImageError, load_image
    from kiosk.money import format_price

    db = resolve_db(args.db, must_exist=True)
    given = {"background": load_image(Path(args.background))} if args.background else {}
    engine = open_engine(db, _settings(), **given)  # as the kiosk recognises
    failed = 0
    try:
        for n, path in enumerate(args.images):
            try:  # an unreadable image is reported, and the others are still recognised
                image = load_image(Path(path))
            except ImageError as exc:
                failed += 1
                if args.json:
                    _print_json({"image": str(path), "error": str(exc)})
                else:
                    print(f"kiosk: error: {exc}", file=sys.stderr)
                continue
            result = engine.recognize(image)
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
    return 2 if failed else 0


def _text_reader_if(wanted: bool):
    """A pack-text reader for ``--text``, else None."""
    if not wanted:
        return None
    from kiosk.text import TextReader

    return TextReader()


def _stage_progress(tty_only: bool):
    """progress(stage, done, total) printed on one line of stderr (only on a terminal when
    ``tty_only``)."""
    def progress(stage: str, done: int, total: int) -> None:
        if not tty_only or sys.stderr.isatty():
            print(f"\r{stage}: {done}/{total}", end="" if done < total else "\n",
                  file=sys.stderr, flush=True)
    return progress


def cmd_eval(args) -> int:
    from kiosk.assemble import load_model
    from kiosk.decide import Decider
    from kiosk.adapt import Adaptation
    from kiosk.engine import model_threshold
    from kiosk.settings import Settings
    from kiosk.tools.evaluate import evaluate_lists

    embedder = load_model(model=args.model)
    threshold = args.threshold if args.threshold is not None else model_threshold(embedder)
    reader = _text_reader_if(args.text)
    adaptation = Adaptation.from_settings((_CONTEXT["settings"] or Settings()).recognition,
                                          adapt=args.adapt)
    report = evaluate_lists(embedder, Path(args.gallery), [Path(q) for q in args.query],
                            Decider(k=args.k, threshold=threshold),
                            progress=_progress("embedding"), text_reader=reader,
                            adaptation=adaptation)
    _print_report(report.to_dict(), args.json)
    return 0


def cmd_eval_trays(args) -> int:
    from kiosk.assemble import load_model
    from kiosk.tools.tray_eval import run_tray_eval

    progress = _stage_progress(tty_only=False)
    embedder = load_model(model=args.model)
    reader = _text_reader_if(args.text)
    report = run_tray_eval(embedder, Path(args.gallery), Path(args.query), n_trays=args.trays,
                           seed=args.seed, threshold=args.threshold, progress=progress,
                           text_reader=reader)
    _print_report(report.to_dict(), args.json)
    return 0


def cmd_eval_stream(args) -> int:
    from kiosk.assemble import load_model
    from kiosk.settings import Settings
    from kiosk.tools.stream_eval import run_stream

    if args.items is not None and not Path(args.items).parent.is_dir():
        raise CliError(f"--items: no folder {Path(args.items).parent}")
    progress = _stage_progress(tty_only=True)
    embedder = load_model(model=args.model)
    reader = _text_reader_if(args.text)
    report = run_stream(embedder, Path(args.gallery), [Path(q) for q in args.query],
                        learn=args.learn, seed=args.seed, text_reader=reader,
                        settings=_CONTEXT["settings"] or Settings(),
                        unsure_margin=args.margin, threshold=args.threshold,
                        product_floor=args.floor, adapt=args.adapt, progress=progress,
                        details=args.items is not None)
    if args.items is not None:
        items = report.pop("items")
        with open(args.items, "w", encoding="utf-8") as f:
            for n, item in enumerate(items):
                f.write(json.dumps({"n": n, **item}, ensure_ascii=False) + "\n")
    _print_report(report, args.json)
    return 0


def cmd_calibrate(args) -> int:
    from kiosk.assemble import load_model, open_engine
    from kiosk.tools.calibrate import calibrate
    from kiosk.settings import Settings, default_settings_path, save_settings, with_changes

    embedder = load_model(model=args.model)
    db = resolve_db(args.db, embedder, must_exist=True)
    settings = _CONTEXT["settings"] or Settings()
    # measured from the default margins, not from the ones it is about to replace
    engine = open_engine(db, settings, embedder=embedder, unsure_margin=None,
                         product_floor=None, text_backfill_limit=0)
    try:
        report = calibrate(engine, args.silent_rate, min_margin=args.min_margin)
        old = settings.checkout.unsure_margin
        if not args.dry_run:
            path = Path(args.top_settings) if args.top_settings else default_settings_path()
            save_settings(with_changes(settings, "checkout",
                                       unsure_margin=report["unsure_margin"],
                                       product_floor=report["product_floor"]), path)
            engine.catalog.audit("calibrate", None, role="cli",
                                 before={"unsure_margin": old,
                                         "product_floor": settings.checkout.product_floor},
                                 after={"unsure_margin": report["unsure_margin"],
                                        "product_floor": report["product_floor"],
                                        "silent_rate": args.silent_rate,
                                        "expected": report["expected"]})
            report["settings"] = str(path)
    finally:
        engine.close()
    if args.json:
        _print_json(report)
    else:
        e = report["expected"]
        floor = report["product_floor"]
        print(f"unsure margin {report['unsure_margin']:.3f} (was {old:.3f}), per-product "
              f"thresholds {'off' if floor is None else f'{floor:+.2f}'}"
              + ("" if report["reached"] else
                 f": the target silent rate {args.silent_rate:g} is not reached"))
        if report["held_at_min_margin"]:
            print(f"the catalogue's own views alone would allow a smaller margin; it is kept at "
                  f"{report['min_margin']:.3f} or more, the lowest the kiosk uses: new photos "
                  "at the till are charged wrongly more often than the catalogue's views say")
        print(f"expected on the catalogue's own views: {e['cashier_rate']:.1%} to the cashier, "
              f"{e['silent_rate']:.1%} charged wrongly, {e['ok_rate']:.1%} right; "
              f"products not in the catalogue sent to the cashier "
              f"{report['unknown_to_cashier']:.1%}")
        if "settings" in report:
            print(f"written to {report['settings']} ([checkout] unsure_margin, "
                  "product_floor)")
    return 0


def cmd_split_dev(args) -> int:
    from kiosk.tools.splits import dev_split, write_split

    split = dev_split(Path(args.dataset), seed=args.seed)
    for name, f in write_split(split, Path(args.out)).items():
        print(f"{f}: {len(split[name])} images, {len({l for _, l in split[name]})} SKUs")
    return 0


def _train_from_catalog(args, cfg) -> int:
    import time

    from kiosk.assemble import load_model
    from kiosk.tools.catalog_train import train_from_catalog
    from kiosk.paths import data_dir
    from kiosk.settings import Settings, default_settings_path

    try:  # a background job: the kiosk on the same PC keeps the CPU it needs
        os.nice(10)
    except OSError:
        pass
    settings = _CONTEXT["settings"] or Settings()
    db = _existing(Path(args.from_catalog), "--from-catalog")
    out = Path(args.out) if args.out else (
        data_dir() / "models" / time.strftime("catalog-%Y%m%d-%H%M%S"))
    current = load_model(settings, model=args.model)
    report = train_from_catalog(
        db, current, out, base_lists=args.train or (), cfg=cfg, holdout=args.holdout,
        unsure_margin=settings.checkout.unsure_margin, swap=not args.dry_run,
        settings=settings,
        settings_path=Path(args.top_settings) if args.top_settings else default_settings_path(),
        log_fn=lambda m: print(m, file=sys.stderr, flush=True))
    _print_json(report) if args.json else print(json.dumps(report, indent=2,
                                                           ensure_ascii=False))
    return 0


def cmd_train(args) -> int:
    from kiosk.tools.train import run_training
    from kiosk.embed.model import TrainConfig

    cfg = TrainConfig(inputs=tuple(args.inputs.split(",")), dim=args.dim, margin=args.margin,
                      epochs=args.epochs, views=args.views, seed=args.seed, blend=args.blend,
                      backbone=args.backbone, plain=tuple(args.plain.split(",")),
                      tune_blocks=args.tune_blocks, tune_lr=args.tune_lr, batch=args.batch)
    if args.from_catalog:
        return _train_from_catalog(args, cfg)
    if not args.train:
        raise CliError("give training lists (--train LIST) or --from-catalog DB")
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


def cmd_bench(args, window=None) -> int:
    if getattr(args, "store", None) is not None:
        from kiosk.sync.bench import cmd_store_bench

        return cmd_store_bench(args)
    gui = bool(getattr(args, "gui", False))
    if getattr(args, "soak", None) is not None:
        from kiosk.tools.soak import format_report, run_soak

        say = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
        if gui:
            result = _window(window, "bench --soak --gui").soak(args.soak, progress=say)
        else:
            result = run_soak(args.soak, progress=say)
        if args.json:
            _print_json(result)
        else:
            print(format_report(result))
        return 0 if result["pass"] else 1
    if gui:
        result = _window(window, "bench --gui").bench(
            progress=lambda msg: print(msg, file=sys.stderr),
            model_process=not args.model_in_process)
        result["model_process"] = not args.model_in_process
        if args.json:
            _print_json(result)
        else:
            print(json.dumps(result, indent=2, ensure_ascii=False))
        return 0
    from kiosk.tools.bench import run_bench

    result = run_bench(quick=args.quick, progress=lambda msg: print(msg, file=sys.stderr))
    if args.json:
        _print_json(result)
    else:
        print(json.dumps(result, indent=2, ensure_ascii=False))
    return 0


def cmd_staff_pin(args) -> int:
    """Set the staff PIN from the kiosk PC (a technician with a shell), not the shop floor."""
    import getpass

    from kiosk.catalog import Catalog
    from kiosk.checkout.staff_auth import PinFormatError, StaffAuth, check_pin

    db = resolve_db(args.db, must_exist=True)
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


def cmd_cashier(args) -> int:
    """Cashier accounts (kiosk.checkout.cashier_auth): add, list, enable, disable; audited as "cli"."""
    from kiosk.checkout.cashier_auth import CashierAuth, check_badge, check_cashier_id, check_code, check_name
    from kiosk.catalog import Catalog

    # list / enable / disable on a mistyped --db is an error, not a new empty catalogue
    db = resolve_db(args.db, must_exist=args.cashier_command != "add")
    if args.cashier_command == "add":
        try:  # everything checked before the catalogue is opened: nothing written on bad input
            check_cashier_id(args.id)
            check_name(args.name)
            if args.badge is not None:
                check_badge(args.badge)
        except ValueError as exc:
            raise CliError(f"{exc}; nothing changed") from None
        if args.code_stdin or not sys.stdin.isatty():
            lines = sys.stdin.read().splitlines()
            code = again = lines[0].strip() if lines else ""
        else:
            import getpass

            code = getpass.getpass(f"code for cashier {args.id} (4-8 digits): ")
            again = getpass.getpass("the same code again: ")
        if code != again:
            raise CliError("the two codes differ; nothing changed")
        try:
            check_code(code)
        except ValueError as exc:
            raise CliError(f"{exc}; nothing changed") from None
        with Catalog(db) as catalog:
            try:
                cashier = CashierAuth(catalog).add(args.id, args.name, code, args.badge,
                                                   role="cli")
            except ValueError as exc:
                raise CliError(f"{exc}; nothing changed") from None
        print(f"cashier {cashier.id} ({cashier.name}) added to {db}"
              + (" with a badge" if cashier.has_badge else ""))
        return 0
    with Catalog(db) as catalog:
        auth = CashierAuth(catalog)
        if args.cashier_command == "list":
            cashiers = auth.list()
            if args.json:
                for c in cashiers:
                    _print_json({"id": c.id, "name": c.name, "active": c.active,
                                 "badge": c.has_badge})
            else:
                for c in cashiers:
                    print(f"{_pad(c.id, 10)} {_pad(c.name, 20)} "
                          f"{'active' if c.active else 'disabled':<9} "
                          f"{'badge' if c.has_badge else 'no badge'}")
                if not cashiers:
                    print(f"no cashiers in {db} (add one: kiosk cashier add --id C001 "
                          "--name NAME)", file=sys.stderr)
            return 0
        active = args.cashier_command == "enable"
        try:
            changed = auth.set_active(args.cashier_id, active, role="cli")
        except ValueError as exc:
            raise CliError(str(exc)) from None
    state = "enabled" if active else "disabled"
    print(f"cashier {args.cashier_id.strip()} {state}" + ("" if changed else " already"))
    return 0


def _window(window, what: str):
    """The window toolkit's commands (:mod:`kiosk.ui.commands`), which the program entry
    (:mod:`kiosk.__main__`) gives :func:`main`; this module never imports :mod:`kiosk.ui`."""
    if window is None:
        raise CliError(f"`{what}` needs the window: run it as `kiosk` (python -m kiosk), not "
                       "through kiosk.cli")
    return window() if callable(window) else window


def run_gui(args, window=None) -> int:
    """The kiosk itself (``kiosk``, ``kiosk gui``): it reads its settings itself."""
    return _window(window, "kiosk gui").run_kiosk(
        settings_path=(getattr(args, "settings", None) or getattr(args, "top_settings", None)),
        fullscreen=bool(getattr(args, "fullscreen", False)),
        first_receipt_exit=getattr(args, "first_receipt_exit", None))


def cmd_self_test(args, window=None) -> int:
    from kiosk.tools.selftest import main as self_test

    checks = _window(window, "kiosk --self-test").self_test_checks()
    # reported, the self-test goes on with defaults
    settings = _load_settings(getattr(args, "top_settings", None), strict=False)
    db = None
    if settings is not None and settings.paths.db:
        db = settings.db_path()
    return self_test(db_path=db, as_json=bool(getattr(args, "top_json", False)),
                     settings=settings, window=checks)


# ---------------------------------------------------------------- kiosk store
def add_store_parser(sub) -> None:
    s = sub.add_parser("store", help="the store's PostgreSQL server shared by its kiosks "
                                     "(init, status, sync)")
    st = s.add_subparsers(dest="store_command", required=True)
    for name, what in (("init", "create or migrate the server schema"),
                       ("status", "kiosks, last contact, sync lag and pending outbox"),
                       ("sync", "push this kiosk's outbox and pull the store's changes once")):
        p = st.add_parser(name, help=what)
        p.add_argument("--server", metavar="URL",
                       help="postgresql://user@host[:port]/database (default: [store] server)")
        if name == "status":
            p.add_argument("--json", action="store_true")
        if name == "sync":
            p.add_argument("--db", help="catalogue database")
        p.set_defaults(func=cmd_store)


def cmd_store(args) -> int:
    """``kiosk store init | status | sync``: the store's PostgreSQL server (:mod:`kiosk.sync`).
    The server comes from ``[store] server`` (``--server`` overrides it), the password from
    ``[store] password_file`` or ``$KIOSK_STORE_PASSWORD`` (never from the command line, never
    printed)."""
    import psycopg

    from kiosk.sync import server as srv
    from kiosk.sync.config import StoreConfigError, connect, redact, store_config

    try:
        cfg = store_config(_settings(), args.server)
    except StoreConfigError as exc:
        raise CliError(str(exc)) from None
    if cfg is None:
        raise CliError("no store server: set [store] server in the settings (or --server URL)")
    where = redact(cfg.url)
    try:
        if args.store_command == "init":
            with connect(cfg.url, cfg.password) as conn:
                before, after = srv.init_server(conn)
            if before == after:
                print(f"store server {where}: schema version {after}, up to date")
            else:
                print(f"store server {where}: schema version {before} -> {after}")
            return 0
        if args.store_command == "status":
            from kiosk.sync.status import format_status, store_status

            with connect(cfg.url, cfg.password) as conn:
                srv.check_schema(conn)
                st = store_status(conn)
            if args.json:
                print(json.dumps(st, ensure_ascii=False, indent=2))
            else:
                print(format_status(st))
            return 0
        if args.store_command == "sync":
            from kiosk.sync.client import StoreClient

            db = resolve_db(args.db, must_exist=True)
            client = StoreClient(db, cfg.url, password=cfg.password, kiosk_name=cfg.kiosk_name,
                                 model_id=_store_model_id(db))
            try:
                client.connect()
                sent = client.push()
                res = client.pull()
                client.heartbeat()
            finally:
                client.close()
            print(f"{db}: sent {sent} changes, applied {len(res.products)} product changes, "
                  f"{res.views_added} views (+{res.views_pending} waiting for this model), "
                  f"{res.calls} calls; at change {res.last_change_no}")
            return 0
    except srv.ServerSchemaError as exc:
        raise CliError(f"store server {where}: {exc}") from None
    except psycopg.Error as exc:
        first = (str(exc).strip().splitlines() or [exc.__class__.__name__])[0]
        raise CliError(f"store server {where}: {first}") from None
    raise CliError(f"unknown store command {args.store_command!r}")  # pragma: no cover


def _store_model_id(db) -> str | None:
    """The model of the catalogue's gallery (the one the kiosk on it uses), without loading it."""
    from kiosk.catalog import Catalog

    with Catalog(db) as cat:
        rows = cat._rows("SELECT model_id, COUNT(*) FROM gallery_images GROUP BY model_id "
                         "ORDER BY 2 DESC LIMIT 1")
    return rows[0][0] if rows else None


# ---------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    from kiosk import __version__

    p = argparse.ArgumentParser(
        prog="kiosk", description="袋鼯麻麻 self-checkout kiosk (no command: start the kiosk)")
    p.add_argument("-v", "--verbose", action="store_true", help="log progress")
    p.add_argument("--version", action="version", version=f"kiosk {__version__}")
    p.add_argument("--data-dir", metavar="DIR",
                   help="the store's data folder: catalogue, gallery, index, transactions, "
                        "settings, logs (default: $KIOSK_DATA_DIR, else "
                        "$XDG_DATA_HOME/kiosk = ~/.local/share/kiosk)")
    p.add_argument("--settings", dest="top_settings", metavar="TOML",
                   help="settings file for any command (default: DATA_DIR/settings.toml); "
                        "its [paths] db and data_dir apply to every command")
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
    db_default = None  # resolved when the command runs (settings, $KIOSK_DB, store, demo)
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
    s.add_argument("--query", required=True, action="append", metavar="LIST",
                   help="query photos (repeatable: the lists are taken together; labels not "
                        "in the gallery are products to reject)")
    s.add_argument("--model", help="recognition model folder (default: built-in)")
    s.add_argument("--threshold", type=float)
    s.add_argument("--k", type=int, default=5)
    s.add_argument("--text", action="store_true",
                   help="also read the packs (PP-OCRv4) and re-rank close candidates by their "
                        "text, as the kiosk does")
    s.add_argument("--adapt", action=argparse.BooleanOptionalAction, default=None,
                   help="the store's own similarity learned from the gallery's views, as the "
                        "kiosk uses it (default: [recognition] adapt of the settings)")
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

    s = sub.add_parser("eval-stream", help="a stream of items one by one through the "
                                           "checkout's decision, with or without learning "
                                           "from the cashier's answers")
    s.add_argument("--gallery", required=True, metavar="LIST", help="photos to enrol")
    s.add_argument("--query", required=True, action="append", metavar="LIST",
                   help="photos presented as items (repeatable; all shuffled together)")
    s.add_argument("--learn", choices=["none", "cashier", "all"], default="none",
                   help="learn nothing, the cashier's answers, or also accepted items")
    s.add_argument("--seed", type=int, default=0, help="the order of the stream")
    s.add_argument("--text", action="store_true",
                   help="read the packs (PP-OCRv4) as the kiosk does")
    s.add_argument("--model", help="recognition model folder (default: built-in)")
    s.add_argument("--margin", type=float,
                   help="unsure margin (default: [checkout] unsure_margin of the settings)")
    s.add_argument("--threshold", type=float,
                   help="unknown threshold (default: the settings', else the model's)")
    s.add_argument("--floor", type=float,
                   help="per-product thresholds: a product's usual similarity less this "
                        "(default: [checkout] product_floor of the settings; unset: off)")
    s.add_argument("--adapt", action=argparse.BooleanOptionalAction, default=None,
                   help="the store's own similarity learned from the catalogue's views "
                        "(default: [recognition] adapt of the settings)")
    s.add_argument("--items", metavar="FILE",
                   help="also write every item, in stream order, as a JSON line to FILE: its "
                        "product, outcome, charge, and the decision's first product, "
                        "similarity and margin")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_eval_stream)

    s = sub.add_parser("calibrate", help="choose the unsure margin from the catalogue's own "
                                         "views for a target silent (wrong charge) rate")
    s.add_argument("--db", help="catalogue (default: the store's, else the demo)")
    s.add_argument("--silent-rate", type=float, default=0.01,
                   help="the largest share of items charged as a wrong product (default 0.01)")
    s.add_argument("--model", help="recognition model folder (default: built-in)")
    s.add_argument("--min-margin", type=float, default=None,
                   help="never choose a smaller unsure margin (default: the kiosk's default, "
                        "0.05: the catalogue's own views look easier than new photos)")
    s.add_argument("--dry-run", action="store_true", help="report only; change no settings")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_calibrate)

    s = sub.add_parser("staff-pin", help="set the staff PIN (asked twice; a technician's job)")
    s.add_argument("--db", help="catalogue (default: the store's, else the demo)")
    s.add_argument("--reset", action="store_true", help="replace an existing PIN")
    s.add_argument("--stdin", action="store_true", help="read the PIN from standard input")
    s.set_defaults(func=cmd_staff_pin)

    c = sub.add_parser("cashier", help="cashier accounts: who may correct items at the "
                                       "checkout (code or badge)").add_subparsers(
        dest="cashier_command", required=True)
    s = c.add_parser("add", help="add a cashier (the code is asked twice)")
    s.add_argument("--db", help="catalogue (default: the store's, else the demo)")
    s.add_argument("--id", required=True, help="cashier id, such as C001")
    s.add_argument("--name", required=True)
    s.add_argument("--badge", metavar="TEXT",
                   help="the content of the barcode or QR code on the cashier's card")
    s.add_argument("--code-stdin", action="store_true",
                   help="read the code (4-8 digits) from standard input")
    s.set_defaults(func=cmd_cashier)
    s = c.add_parser("list", help="list cashiers (id, name, active, badge)")
    s.add_argument("--db", help="catalogue (default: the store's, else the demo)")
    s.add_argument("--json", action="store_true", help="one JSON object per cashier")
    s.set_defaults(func=cmd_cashier)
    for name, what in (("disable", "a cashier's code and badge stop working"),
                       ("enable", "a disabled cashier's code and badge work again")):
        s = c.add_parser(name, help=what)
        s.add_argument("--db", help="catalogue (default: the store's, else the demo)")
        s.add_argument("cashier_id", metavar="ID")
        s.set_defaults(func=cmd_cashier)

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
    s.add_argument("--train", action="append", metavar="LIST",
                   help="PaddleClas list(s) of labelled training images (with --from-catalog: "
                        "base lists trained on beside the catalogue's views)")
    s.add_argument("--from-catalog", metavar="DB",
                   help="train on the catalogue's own views (enrolment and learned); the new "
                        "model is taken ([recognition] model, the gallery embedded with it) "
                        "only when it beats the current one on the most recent views held out")
    s.add_argument("--holdout", type=float, default=0.2,
                   help="with --from-catalog: the share of the most recent views held out")
    s.add_argument("--model", help="with --from-catalog: the current model folder (default: "
                                   "[recognition] model, else the built-in model)")
    s.add_argument("--dry-run", action="store_true",
                   help="with --from-catalog: train and compare, change nothing")
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
    s.add_argument("--batch", type=int, default=128, help="training batch (views)")
    s.add_argument("--backbone", default="lite0", choices=["lite0", "mnv2", "lite0+mnv2"],
                   help="frozen ImageNet trunk(s): EfficientNet-Lite0, MobileNetV2 (mgap), or both")
    s.add_argument("--plain", default="gap",
                   help="plain descriptors kept beside the neck output with --blend (e.g. gap,mgap)")
    s.add_argument("--tune-blocks", type=int, default=0, metavar="N",
                   help="also fine-tune Lite0's last N blocks and head conv on their cached "
                        "input activations (0: the neck alone)")
    s.add_argument("--tune-lr", type=float, default=1e-4,
                   help="learning rate of the fine-tuned blocks (the neck keeps its own)")
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
    s.add_argument("--store", type=int, metavar="N",
                   help="N simulated kiosks against a local PostgreSQL (sales, enrolments, "
                        "price changes): sync lag, server CPU, rows per second, nothing lost")
    s.add_argument("--minutes", type=float, default=2.0,
                   help="with --store: how long to run (default 2)")
    s.add_argument("--server", metavar="URL",
                   help="with --store: an existing server (default: a throw-away local one)")
    s.set_defaults(func=cmd_bench)

    add_store_parser(sub)
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


def main(argv: list[str] | None = None, window=None) -> int:
    """Run the ``kiosk`` command line ``argv``; the exit status.  ``window``: the window
    toolkit's commands (:mod:`kiosk.ui.commands`, or a function returning them) for the
    commands that need Qt: the kiosk itself, ``--self-test``, ``bench --gui`` and ``bench
    --soak --gui``.  Given by the program entry (:mod:`kiosk.__main__`); without it those
    commands are refused (exit status 2)."""
    os.umask(0o077)  # everything the kiosk writes (catalogue, pictures, backups) is owner-only
    from kiosk.logs import setup_logging

    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["_embed-server"]:  # the bundle's embedding child process (kiosk.embed.remote)
        from kiosk.embed.remote import serve

        return serve(argv[1:])
    try:
        _early_data_dir(argv)
    except CliError as exc:
        print(f"kiosk: error: {exc}", file=sys.stderr)
        return 2
    parser = build_parser()
    args = parser.parse_args(argv)
    command = getattr(args, "func", None)
    if args.self_test or command in (None, run_gui):
        setup_logging(args.verbose)
        try:
            if args.self_test:
                return cmd_self_test(args, window)
            return run_gui(args, window)  # plain ``kiosk``: the kiosk itself
        except CliError as exc:
            print(f"kiosk: error: {exc}", file=sys.stderr)
            return 2
    try:
        try:  # the settings first: their [paths] data_dir decides where the log goes
            _CONTEXT["settings"] = _load_settings(args.top_settings)
        finally:
            setup_logging(args.verbose)
        rc = command(args, window) if command is cmd_bench else command(args)
        sys.stdout.flush()  # a closed pipe shows here, not at exit
        return rc
    except BrokenPipeError:
        if not _stdout_closed():
            raise  # another pipe (not ours to hide)
        # the reader went away (``kiosk gallery list | head -1``): stop quietly; stdout goes
        # to /dev/null so the interpreter's last flush cannot fail again
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return 1
    except (CliError, ValueError, KeyError, FileNotFoundError) as exc:
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"kiosk: error: {msg}", file=sys.stderr)
        return 2
    finally:
        _CONTEXT["settings"] = None


if __name__ == "__main__":
    sys.exit(main())
