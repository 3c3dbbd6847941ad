"""Make a published asv dashboard work without internet access.

asv 0.6's ``index.html`` loads jQuery, flot, bootstrap, stupidtable and md5
from public CDNs; on a machine that cannot reach them (CI, an air-gapped
cluster) the page shows "Can not determine continental origin of swallow" and
no graphs. This copies Debian's packaged copies of those libraries into
``html/vendor/`` and points ``index.html`` at them:

    apt-get install -y libjs-jquery libjs-jquery-flot libjs-bootstrap \\
        libjs-jquery-stupidtable node-blueimp-md5
    cd asv_bench && asv publish && python offline_dashboard.py html

With internet access you do not need this: ``asv publish && asv preview``.
"""

import os
import re
import shutil
import sys

JS = "/usr/share/javascript"
# CDN file name -> Debian file (flot 4's bundled build includes time and categories).
LIBRARIES = {
    "jquery-3.3.1.min.js": f"{JS}/jquery/jquery.min.js",
    "jquery.flot.min.js": f"{JS}/jquery-flot/jquery.flot.min.js",
    "jquery.flot.time.min.js": None,
    "jquery.flot.categories.min.js": None,
    "jquery.flot.selection.min.js": f"{JS}/jquery-flot/jquery.flot.selection.min.js",
    # orderBars only offsets side-by-side bars; without it bars overlap.
    "jquery.flot.orderBars.js": "",
    "stupidtable.min.js": f"{JS}/jquery-stupidtable/stupidtable.min.js",
    "md5.min.js": f"{JS}/blueimp-md5/md5.min.js",
    "bootstrap.min.js": f"{JS}/bootstrap/js/bootstrap.min.js",
    "bootstrap.min.css": f"{JS}/bootstrap/css/bootstrap.min.css",
}
TAG = re.compile(r'<(script|link)\b[^>]*\b(?:src|href)="(https://[^"]+)"[^>]*>(?:\s*</script>)?',
                 re.S)


def missing():
    """The Debian files this needs that are not installed."""
    return sorted(p for p in LIBRARIES.values() if p and not os.path.exists(p))


def make_offline(html_dir):
    index = os.path.join(html_dir, "index.html")
    text = open(index, encoding="utf-8").read()
    absent = missing()
    if absent:
        raise SystemExit(f"offline_dashboard: missing {', '.join(absent)}; install "
                         f"libjs-jquery libjs-jquery-flot libjs-bootstrap "
                         f"libjs-jquery-stupidtable node-blueimp-md5")
    vendor = os.path.join(html_dir, "vendor")
    os.makedirs(vendor, exist_ok=True)

    def local(match):
        kind, url = match.group(1), match.group(2)
        name = url.rsplit("/", 1)[1]
        if name not in LIBRARIES:
            raise SystemExit(f"offline_dashboard: index.html loads {url}, which this "
                             f"script does not know; update LIBRARIES")
        source = LIBRARIES[name]
        if source is None:                       # already inside another file
            return ""
        if source == "":
            open(os.path.join(vendor, name), "w").close()
        else:
            shutil.copyfile(source, os.path.join(vendor, name))
        if kind == "link":
            return f'<link rel="stylesheet" href="vendor/{name}">'
        return (f'<script type="text/javascript" src="vendor/{name}" '
                f'onerror="js_load_failure()"></script>')

    text = TAG.sub(local, text)
    if os.path.isdir(f"{JS}/bootstrap/fonts"):
        shutil.copytree(f"{JS}/bootstrap/fonts", os.path.join(html_dir, "fonts"),
                        dirs_exist_ok=True)
    with open(index, "w", encoding="utf-8") as f:
        f.write(text)


if __name__ == "__main__":
    make_offline(sys.argv[1] if len(sys.argv) > 1 else "html")
