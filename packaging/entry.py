"""Entry point of the PyInstaller bundle: the same ``kiosk`` command as the console script
(:func:`kiosk.__main__.main`)."""
import sys

from kiosk.__main__ import main

if __name__ == "__main__":
    sys.exit(main())
