"""Serves the web page (web/) on http://localhost:8000/: the shipped model finding and drawing the
hand in your browser, offline.

    python tools/serve_web.py [--port 8000]

Runs ``npm ci`` in web/ first when its packages are missing (it installs LiteRT.js from the
lockfile and copies the model and the examples into web/assets/). The page is served cross-origin
isolated (COOP/COEP headers), so LiteRT.js may use its threaded WebAssembly; ``cd web && python -m
http.server`` serves the same page with one thread. The camera needs http://localhost (or https).
"""

from __future__ import annotations

import argparse
import functools
import http.server
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # tools/: chromium
import chromium  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--host", default="127.0.0.1", help="127.0.0.1: this machine only")
    args = parser.parse_args(argv)
    if chromium.web_ready():
        npm = shutil.which("npm")
        if npm is None:
            sys.exit("web/ needs `npm ci` and there is no npm here (apt-get install nodejs npm)")
        subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=chromium.WEB, check=True)
    handler = functools.partial(chromium._QuietHandler, directory=chromium.WEB)
    server = http.server.ThreadingHTTPServer((args.host, args.port), handler)
    server.isolated = True
    host = "localhost" if args.host in ("127.0.0.1", "0.0.0.0") else args.host
    print(f"serving web/ at http://{host}:{server.server_address[1]}/ (Ctrl-C stops)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
