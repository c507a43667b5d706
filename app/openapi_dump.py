"""Write openapi/openapi.json from the app: `python -m app.openapi_dump`."""

import json
from pathlib import Path

from app.main import app

if __name__ == "__main__":
    out = Path(__file__).resolve().parents[1] / "openapi" / "openapi.json"
    out.write_text(json.dumps(app.openapi(), ensure_ascii=False, indent=2) + "\n")
    print(f"wrote {out}")
