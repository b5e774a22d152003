"""The page in a real browser: headless Chromium (Debian's) under Playwright, against dreamweb and
a real dreamd with tiny networks."""
from __future__ import annotations

import pytest

from ..conftest import DATA
from .conftest import TOKENS

PHOTO = DATA / "chelsea_small.png"
# Long enough with the tiny network (a few seconds) to reload or cancel mid-way.
SLOW_DREAM = {"size": "512", "steps": "60"}
# Collects every preview the page shows (src changes), to count distinct frames.
_WATCH_FRAMES = """
window.__shown = [];
new MutationObserver((ms) => ms.forEach((m) => {
  const src = m.target.getAttribute('src');
  if (src && src.startsWith('data:')) window.__shown.push(src);
})).observe(document, {subtree: true, attributes: true, attributeFilter: ['src']});
"""


@pytest.fixture
def page(chromium, gateway):
    # bypass_csp: Playwright's waits evaluate strings, which the page's CSP forbids (as it should);
    # test_a_phone_screen_paints_under_the_pages_own_csp runs with the CSP on.
    context = chromium.new_context(viewport={"width": 1100, "height": 900}, bypass_csp=True)
    context.add_init_script(_WATCH_FRAMES)
    context.add_init_script(f"localStorage.setItem('dreamweb.token', '{TOKENS[0]}')")
    pg = context.new_page()
    pg.set_default_timeout(60_000)
    pg.goto(gateway.url)
    pg.wait_for_function("document.querySelector('#dreamd').textContent.startsWith('dreamd on')")
    yield pg
    context.close()


def _fill(page, mode: str, fields: dict[str, str], photo=PHOTO) -> None:
    page.check(f"input[name=mode][value={mode}]")
    if photo is not None:
        page.set_input_files("#photo", photo)
    for name, value in fields.items():
        page.fill(f"#{name}", value)


def _state(page, state: str, timeout: float = 60_000) -> None:
    page.wait_for_selector(f"#state[data-state={state}]", timeout=timeout)


_DROP = """async (bytes) => {
  const file = new File([new Uint8Array(bytes)], 'dropped.png', {type: 'image/png'});
  const data = new DataTransfer();
  data.items.add(file);
  document.querySelector('#drop').dispatchEvent(new DragEvent('drop', {dataTransfer: data, bubbles: true}));
}"""


def test_a_dropped_photo_painted_with_a_preset_shows_in_the_page(page):
    _fill(page, "preset", {"size": "128"}, photo=None)
    page.evaluate(_DROP, list(PHOTO.read_bytes()))  # dropped on the page rather than chosen
    assert not page.is_hidden("#thumb")
    page.select_option("#preset", index=1)
    page.click("#start")
    _state(page, "succeeded")
    src = page.get_attribute("#preview", "src")
    assert src.startswith("blob:")
    assert page.evaluate("document.querySelector('#preview').naturalWidth") == 128
    assert page.get_attribute("#download", "href") == src


def test_a_dream_shows_three_distinct_frames_before_its_result(page):
    _fill(page, "dream", {"size": "256", "steps": "20"})
    page.click("#start")
    _state(page, "succeeded")
    shown = page.evaluate("window.__shown")
    assert len(set(shown)) >= 3, f"{len(set(shown))} distinct frames"
    assert page.evaluate("window.dreamweb.frames") >= 3
    assert page.get_attribute("#preview", "src").startswith("blob:")  # the result replaced the frames
    assert float(page.get_attribute("#progress", "value")) == 1.0


def test_reload_mid_render_reattaches_and_finishes(page):
    _fill(page, "dream", SLOW_DREAM)
    page.click("#start")
    page.wait_for_function("window.dreamweb.frames >= 1")
    job = page.evaluate("window.dreamweb.job")
    page.reload()
    assert page.evaluate("window.dreamweb.job") == job  # from the address: #job=<id>
    page.wait_for_function("window.dreamweb.frames >= 1")  # frames again, after the reload
    _state(page, "succeeded", 120_000)
    assert page.locator(f"#jobs button[data-job='{job}'][data-state=succeeded]").count() == 1


def test_cancel_shows_the_cancelled_state(page):
    _fill(page, "dream", {"size": "512", "steps": "400"})
    page.click("#start")
    page.wait_for_function("window.dreamweb.frames >= 1")
    page.click("#cancel")
    _state(page, "cancelled")
    assert page.is_hidden("#error")


def test_a_text_file_as_a_photo_shows_dreamds_message(page, tmp_path):
    text = tmp_path / "notes.png"
    text.write_text("these are notes, not a picture\n")
    _fill(page, "dream", {"size": "128"}, photo=text)
    page.click("#start")
    _state(page, "failed")
    message = page.text_content("#error")
    assert message.startswith("INVALID_ARGUMENT: image") and "image" in message, message


def test_another_token_cannot_see_the_job(page, chromium, gateway):
    _fill(page, "dream", {"size": "128", "steps": "3"})
    page.click("#start")
    _state(page, "succeeded")
    job = page.evaluate("window.dreamweb.job")
    other = chromium.new_context()
    other.add_init_script(f"localStorage.setItem('dreamweb.token', '{TOKENS[1]}')")
    bob = other.new_page()
    try:
        bob.goto(gateway.url + f"#job={job}")
        bob.wait_for_selector("#state[data-state=failed]", timeout=30_000)
        assert bob.text_content("#error").startswith("NOT_FOUND")
        bob.click("#refresh")
        bob.wait_for_timeout(500)
        assert bob.locator(f"#jobs button[data-job='{job}']").count() == 0
        page.click("#refresh")
        page.click(f"#jobs button[data-job='{job}']")  # re-opened from the list, in a fresh view
        _state(page, "succeeded")
        assert page.get_attribute("#preview", "src").startswith("blob:")
    finally:
        other.close()


def test_a_gan_sample_from_the_page(page, alices_generator):
    page.reload()
    page.wait_for_function("document.querySelector('#dreamd').textContent.startsWith('dreamd on')")
    _fill(page, "sample", {"count": "4"}, photo=None)
    page.select_option("#generator", alices_generator)
    page.click("#start")
    _state(page, "succeeded")
    assert page.evaluate("document.querySelector('#preview').naturalWidth") > 0


def test_a_phone_screen_paints_under_the_pages_own_csp(chromium, gateway):
    context = chromium.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    context.add_init_script(f"localStorage.setItem('dreamweb.token', '{TOKENS[0]}')")
    try:
        pg = context.new_page()
        pg.set_default_timeout(60_000)
        pg.goto(gateway.url)
        pg.wait_for_selector("#preset option", state="attached")
        assert pg.evaluate("document.documentElement.scrollWidth") <= 390
        box = pg.locator("#start").bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= 390
        _fill(pg, "preset", {"size": "96"})
        pg.click("#start")
        _state(pg, "succeeded")
        assert pg.evaluate("document.querySelector('#preview').naturalWidth") == 96
        assert pg.evaluate("document.documentElement.scrollWidth") <= 390
    finally:
        context.close()


def test_a_gatys_painting_plots_its_loss(page, token_dreamd):
    """The page plots each progress event's loss as it arrives. The painting waits behind a long
    dream until the page is attached: else a short render could end before the page's event
    stream opens, and the page would get only its last progress event (one point; it failed so
    once in CI). Its 40 iterations take long enough (~0.8 s) for several of the journal's
    progress writes, which come at most every 0.25 s."""
    import time

    from dreamrender.client import DreamClient
    from dreamrender.v1 import dreamrender_pb2 as pb

    with DreamClient(token_dreamd.target, token=TOKENS[0]) as c:
        stream = c.render_dream(PHOTO, size=512, steps=1000, octaves=1, detach=True, timeout=120)
        blocker = next(stream).job_id
        stream.close()  # detached: it runs on, holding the long lane
        deadline = time.monotonic() + 30
        while c.get_job(blocker).state != pb.JOB_STATE_RUNNING and time.monotonic() < deadline:
            time.sleep(0.05)
        _fill(page, "style", {"size": "96", "iterations": "40"})
        page.set_input_files("#style", DATA / "starry_small.png")
        page.select_option("#method", "optimize")
        page.click("#start")
        _state(page, "running")  # the page's event stream is open (the painting waits in the queue)
        assert c.get_job(blocker).state == pb.JOB_STATE_RUNNING
        c.cancel_job(blocker)
    _state(page, "succeeded")
    points = page.evaluate("window.dreamweb.plot")
    assert len(points) >= 2 and all(y > 0 for _, y in points)  # the total loss at each progress event
    assert not page.is_hidden("#plot")
    assert page.evaluate("document.querySelector('#preview').naturalWidth") == 96
