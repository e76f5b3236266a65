"""End-to-end: the explorer page in headless Chromium (Debian's chromium) driven by Playwright."""
import shutil
import socket
import threading
import time
from pathlib import Path

import pytest
import torch

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (apt-get install chromium)")
pytest.importorskip("fastapi", reason="the serve extra (fastapi, uvicorn) is not installed")
uvicorn = pytest.importorskip("uvicorn", reason="the serve extra (uvicorn) is not installed")
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright (pip) is not installed")

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server():
    from vaekit.core.config import ModelConfig
    from vaekit.core.model import VAE
    from vaekit.jobs.explore.server import create_app

    torch.manual_seed(0)
    model = VAE(ModelConfig(input_shape=(1, 8, 8), latent_dim=4, hidden=(32,))).eval()
    port = _free_port()
    srv = uvicorn.Server(uvicorn.Config(create_app(model, torch.rand(6, 64), None), host="127.0.0.1", port=port,
                                        log_level="warning"))
    th = threading.Thread(target=srv.run, daemon=True)
    th.start()
    for _ in range(100):
        if srv.started:
            break
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}/"
    srv.should_exit = True
    th.join(5)


def test_slider_changes_the_image_and_screenshot(server, tmp_path):
    args = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync"]
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=args)
        page = browser.new_page()
        page.goto(server)
        page.wait_for_function("document.getElementById('decoded').src.startsWith('data:image/png')")
        before = page.get_attribute("#decoded", "src")
        page.eval_on_selector("#z0", "e => { e.value = 2.8; e.dispatchEvent(new Event('input')); }")
        page.wait_for_function("src => document.getElementById('decoded').src !== src", arg=before)
        after = page.get_attribute("#decoded", "src")
        assert after != before
        page.click("#interpolate")
        page.wait_for_function("document.getElementById('strip').src.startsWith('data:image/png')")
        shot = tmp_path / "explorer.png"
        page.screenshot(path=str(shot))
        browser.close()
    assert shot.stat().st_size > 1000
    ARTIFACTS.mkdir(exist_ok=True)
    shutil.copy(shot, ARTIFACTS / "explorer.png")
