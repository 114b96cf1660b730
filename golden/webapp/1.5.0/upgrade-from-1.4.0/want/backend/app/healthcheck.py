"""`python -m app.healthcheck`: exit 0 when http://127.0.0.1:$PORT/healthz answers 200.

Used by the image's HEALTHCHECK and by compose; needs nothing but the standard library.
"""

import os
import sys
import urllib.request


def main() -> int:
    url = f"http://127.0.0.1:{os.environ.get('PORT') or 8080}/healthz"
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # ignore *_PROXY
    try:
        with opener.open(url, timeout=3) as resp:
            return 0 if resp.status == 200 else 1
    except Exception as exc:  # noqa: BLE001 - any failure means unhealthy
        print(f"healthcheck {url}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
