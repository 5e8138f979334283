"""The product catalogue: products, gallery embeddings, finished baskets, staff corrections.

One SQLite file (WAL mode, foreign keys on), opened through sqlite-utils.  The schema is
versioned with ``PRAGMA user_version`` and the numbered functions in :data:`MIGRATIONS`, applied
in order inside one transaction when the catalogue is opened.

Money is integer fen (``price`` NULL = unpriced: staff must price the product before it is sold).
Embeddings are stored as float32 little-endian BLOBs with the ``model_id`` and ``dim`` of the model
that made them; :meth:`Catalog.gallery_vectors` returns only one model's vectors, so vectors of
different models never mix.

Every multi-row change runs in one transaction (:meth:`Catalog.transaction`), so a failure leaves
nothing half-written.  A :class:`Catalog` may be used from any thread, one call at a time.
"""
from __future__ import annotations

from kiosk.catalog.audit import Audit
from kiosk.catalog.common import AUDIT_ROLES, CatalogError, UnknownProductError, check_barcode, check_sku
from kiosk.catalog.database import Database, restrict_db_files
from kiosk.catalog.events import CatalogEvent, Events
from kiosk.catalog.gallery import Gallery
from kiosk.catalog.migrations import MIGRATIONS, SCHEMA_VERSION
from kiosk.catalog.people import People
from kiosk.catalog.products import Product, Products, product_dict
from kiosk.catalog.sales import Sales

__all__ = ["AUDIT_ROLES", "MIGRATIONS", "SCHEMA_VERSION", "Catalog", "CatalogError", "CatalogEvent", "Product",
           "UnknownProductError", "check_barcode", "check_sku", "product_dict", "restrict_db_files"]


class Catalog(Products, Gallery, Sales, People, Audit, Events, Database):
    """The catalogue database at ``path`` (created if missing).  Close it with :meth:`close`.

    One object, its parts by responsibility: :class:`~kiosk.catalog.products.Products`,
    :class:`~kiosk.catalog.gallery.Gallery`, :class:`~kiosk.catalog.sales.Sales`,
    :class:`~kiosk.catalog.people.People`, :class:`~kiosk.catalog.audit.Audit`,
    :class:`~kiosk.catalog.events.Events` (what changed, after commit: :meth:`subscribe`) over
    :class:`~kiosk.catalog.database.Database`."""
