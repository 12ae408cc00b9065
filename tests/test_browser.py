"""The app in a real browser: headless Debian chromium driven by playwright (`msa.testing.CHROMIUM_FLAGS`).

Uploads a real MOSI clip, clicks Analyse, waits for the results and checks that the score, the
gate heatmaps and the contribution waterfall are drawn; saves a screenshot (to the test's tmp
folder, and also to $MSA_SCREENSHOT when set, e.g. ``assets/screenshot.png`` for the README).

Needs Debian's ``chromium`` (``apt-get install chromium``) and ``pip install playwright==1.65.2``;
never ``playwright install`` (no downloads here): the system browser is used.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from pathlib import Path
from urllib.parse import unquote

import pytest
from test_app import server, service  # noqa: F401  (fixtures: one tiny checkpoint, one server)

from conftest import CLIP, ffmpeg, make_media
from msa.metrics import LABEL7_NAMES
from msa.testing import CHROMIUM, CHROMIUM_FLAGS

FLAGS = CHROMIUM_FLAGS
# How long a wait on the app's own work may last before it counts as hung. Generous on purpose: a
# passing wait ends as soon as the page shows the result, and the suite must also pass with busy
# cores beside it (the Train tab's run once took over 180 s with two CPU-bound processes beside
# the suite's two workers).
ANALYSIS_MS = 300_000  # one clip analysed
TRAINING_MS = 600_000  # a training run (the Lab's, the Train tab's)


def app_examples_intact() -> bool:
    from msa.app.page import EXAMPLE_CLIPS, EXAMPLES

    return all((EXAMPLES / name).is_file() for name, _ in EXAMPLE_CLIPS)


pytestmark = [
    pytest.mark.slow,  # a real browser on the running app
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason=f"{CHROMIUM} is missing: install Debian's chromium (apt-get install chromium)"
    ),
]


@pytest.fixture(scope="module")
def playwright():
    """One playwright driver for the module (a second sync driver in one thread is refused)."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright==1.65.2")
    with sync_api.sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def browser(playwright):
    b = playwright.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS, headless=True)
    yield b
    b.close()


def _page_state(page) -> dict:
    """What the Analyse tab shows, for a failure's message: results, inputs and toasts."""
    return page.evaluate("""() => ({
      texts: ['#transcript', '#modalities', '#timings', '#score'].map(
        s => s + ': ' + ((document.querySelector(s) || {}).innerText || '?').slice(0, 200)),
      audio: [...document.querySelectorAll('#audio-input audio')].map(a => a.src),
      video: [...document.querySelectorAll('#video-input video')].map(v => v.src),
      toasts: [...document.querySelectorAll('.toast-body')].map(t => t.innerText)})""")


def test_upload_analyse_and_see_the_plots(browser, server: str, tmp_path: Path) -> None:  # noqa: F811
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(server, wait_until="domcontentloaded", timeout=60_000)
    page.wait_for_selector("#analyse", timeout=60_000)

    # The clip remuxed with a comment: same media, but not byte-identical to the app's example
    # (an upload equal to an example shares its cached path, which is never deleted).
    mine = make_media("remuxed", tmp_path, "my_clip.mp4")
    page.locator("#video-file input[type=file]").set_input_files(str(mine))
    page.wait_for_selector("#video-input video", timeout=30_000)  # uploaded and previewed
    page.click("#analyse")

    # The contribution waterfall is the last thing drawn from the model's numbers.
    page.wait_for_selector("#contrib-plot .js-plotly-plot", timeout=ANALYSIS_MS)
    score = page.locator("#score").inner_text()
    assert any(name in score for name in LABEL7_NAMES), score
    for elem in ("score-plot", "contrib-plot", "shares", "share-grid", "attention"):
        page.wait_for_selector(f"#{elem} .js-plotly-plot", timeout=30_000)
    assert "final score" in page.locator("#contrib-plot").inner_text()
    # The per-word shares: one bar row per branch and layer; the words under them.
    assert page.locator("#shares .js-plotly-plot .barlayer .point").count() >= 4
    assert "favorite" in page.locator("#shares").inner_text().lower()
    assert "text \u2192 acoustic" in page.locator("#branch-notes").inner_text()
    # Where each word looks: pick another word, then a head; the figure is redrawn each time.
    attention_before = page.locator("#attention").inner_html()
    _pick(page, "word-pick", "favorite")
    page.wait_for_function(
        "(b) => document.querySelector('#attention').innerHTML !== b", arg=attention_before, timeout=30_000
    )
    assert "favorite" in page.locator("#attention").inner_text()
    attention_word = page.locator("#attention").inner_html()
    _pick(page, "head-pick", "head 2")
    page.wait_for_function(
        "(b) => document.querySelector('#attention').innerHTML !== b", arg=attention_word, timeout=30_000
    )
    # Clicking a word of the coloured transcript picks it too.
    page.locator("#word-strip").get_by_text("actors").first.click()
    page.wait_for_function("document.querySelector('#word-pick input').value.includes('actors')", timeout=30_000)
    # The advanced section keeps the channel heatmaps.
    page.get_by_text("Advanced: the gate values channel by channel").click()
    page.wait_for_selector("#gates-acoustic .js-plotly-plot .heatmaplayer", timeout=30_000)
    assert page.locator("#gates-visual .js-plotly-plot .heatmaplayer").count() >= 1
    # What if: without the voice; the result names the Shapley subset and the figure is drawn.
    page.locator("#what-if-remove").get_by_text("remove the voice").click()
    page.click("#what-if")
    page.wait_for_selector("#what-if-plot .js-plotly-plot", timeout=ANALYSIS_MS)
    assert "text+visual" in page.locator("#what-if-result").inner_text()
    assert "Used:" in page.locator("#modalities").inner_text()
    assert page.locator("#words").inner_text().strip()  # word timings table
    assert not errors, errors
    href = page.locator("#video-file a[download]").first.get_attribute("href") or ""
    upload = Path(unquote(href.split("file=", 1)[1]))  # the server-side copy of the upload
    assert upload.is_file() and upload.name == mine.name

    shot = tmp_path / "app.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    if os.environ.get("MSA_SCREENSHOT"):
        shutil.copy(shot, os.environ["MSA_SCREENSHOT"])

    # The checkpoint picker: the same clip through the second checkpoint (text only, sigmoid gates).
    _pick(page, "checkpoint", "sigmoid-gates")
    page.click("#analyse")
    page.wait_for_function(
        "document.querySelector('#timings').innerText.includes('sigmoid-gates')", timeout=ANALYSIS_MS
    )
    # The clip has speech and this checkpoint reads no voice: the page blames the model, not the clip.
    notes = page.locator("#branch-notes").inner_text()
    assert "This model does not read the voice" in notes and "no usable voice" not in notes, notes
    assert not errors, errors

    # An example is one click: it fills the inputs and runs the analysis (audio only here).
    # (A click on the example while the page is busy can be lost: click until the results of the
    # clip before are cleared, which the example's analysis does first.)
    before = "document.querySelector('#transcript').innerText.toLowerCase().includes('favorite')"
    for _ in range(3):
        page.get_by_text("audio only:").click()
        try:
            page.wait_for_function(f"!({before})", timeout=15_000)
            break
        except Exception:
            continue
    try:
        heard = "document.querySelector('#transcript').innerText.toLowerCase().includes('it was really good')"
        page.wait_for_function(heard, timeout=ANALYSIS_MS)
    except Exception as e:
        raise AssertionError(f"the audio example's analysis did not arrive; the page shows {_page_state(page)}") from e
    # This checkpoint reads no face: that is the one reason given, not also the clip's (no video track).
    face = next(line for line in page.locator("#modalities").inner_text().splitlines() if "(visual)" in line)
    assert "this model does not read the face" in face and "video track" not in face, face
    assert not errors, errors
    page.close()

    # Closing the page ends its session: its upload is deleted, the examples stay.
    deadline = time.monotonic() + 30
    while upload.exists() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not upload.exists(), f"{upload} was not deleted when its page closed"
    assert app_examples_intact()


def _pick(page, elem_id: str, text: str) -> None:
    """Choose the option containing ``text`` in a gradio Dropdown."""
    page.locator(f"#{elem_id} input").click()
    page.locator("ul[role=listbox] li", has_text=text).first.click()


# Inside each plot: text (titles, annotations, tick labels, legends) that leaves the plot, overlaps
# other text, or is drawn under 12 px (11.5: plotly rounds). Returns [plot id, problem, text].
PLOT_TEXT_PROBLEMS = """() => {
  const out = [];
  for (const plot of document.querySelectorAll('.js-plotly-plot')) {
    const id = (plot.closest('[id]') || {}).id || '?';
    const box = plot.getBoundingClientRect();
    const labels = '.gtitle, .annotation-text, .xtick text, .ytick text, .legendtext, .bartext';
    const texts = [...plot.querySelectorAll(labels)]
      .map(e => [e.textContent.trim(), e.getBoundingClientRect(),
                 (e.getAttribute('transform') || '').includes('rotate'), parseFloat(getComputedStyle(e).fontSize)])
      .filter(([t, r]) => t && r.width > 0);
    for (const [t, r] of texts) if (r.left < box.left - 1 || r.right > box.right + 1) out.push([id, 'clipped', t]);
    for (let i = 0; i < texts.length; i++) for (let j = i + 1; j < texts.length; j++) {
      const [ta, a, slantA, size] = texts[i], [tb, b, slantB] = texts[j];
      let touch;
      if (slantA && slantB) {  // parallel labels at -45 degrees, each ending at its tick (top right):
        // their boxes overlap by design; the glyphs touch when the lines are closer than the text is tall
        touch = Math.abs(a.right - b.right) * Math.SQRT1_2 < size && Math.abs(a.top - b.top) < 2;
      } else {
        const w = Math.min(a.right, b.right) - Math.max(a.left, b.left);
        const h = Math.min(a.bottom, b.bottom) - Math.max(a.top, b.top);
        touch = w > 2 && h > 2;
      }
      if (touch) out.push([id, 'overlap', ta + ' | ' + tb]);
    }
    // An axis title sits beside its axis; on a phone a panel's title could reach into the bars of
    // the panel beside it.
    const bars = [...plot.querySelectorAll('.barlayer .point path')].map(b => b.getBoundingClientRect())
      .filter(b => b.width > 0 && b.height > 0);
    // Every axis's title: g-xtitle, g-ytitle, then g-x2title, g-y2title... in subplots.
    const axisTitles = 'g[class^="g-x"][class$="title"] text, g[class^="g-y"][class$="title"] text';
    for (const t of plot.querySelectorAll(axisTitles)) {
      const r = t.getBoundingClientRect();
      if (bars.some(b => b.left < r.right - 1 && b.right > r.left + 1 && b.top < r.bottom - 1 && b.bottom > r.top + 1))
        out.push([id, 'axis title over bars', t.textContent]);
    }
    for (const e of plot.querySelectorAll('text')) {
      const size = parseFloat(getComputedStyle(e).fontSize);
      if (e.textContent.trim() && size < 11.5) out.push([id, 'small', size + ' px: ' + e.textContent]);
    }
  }
  return out;
}"""


# Outside the plots: a visible label, button, tab, input or line of text that leaves the window or
# is cut off inside its own box (a truncated label: its text wider than the box that clips it).
# Returns [what, text].
COMPONENT_TEXT_PROBLEMS = """() => {
  const out = [], width = document.documentElement.clientWidth;
  const visible = e => { const r = e.getBoundingClientRect(); return r.width > 0 && r.height > 0
    && getComputedStyle(e).visibility !== 'hidden'; };
  const sel = 'label, button, [role=tab], [data-testid=block-info], input, textarea, .prose p, .prose li, .prose td';
  for (const e of document.querySelectorAll(sel)) {
    if (!visible(e) || e.closest('.js-plotly-plot')) continue;
    const r = e.getBoundingClientRect(), text = (e.innerText || e.value || '').trim().slice(0, 60);
    if (r.left < -1 || r.right > width + 1) out.push(['outside the window', text]);
    const style = getComputedStyle(e);
    const clips = style.overflowX !== 'visible' || style.textOverflow === 'ellipsis';
    if (clips && !['INPUT', 'TEXTAREA'].includes(e.tagName) && e.scrollWidth > e.clientWidth + 1)
      out.push(['cut off', text]);
  }
  return out;
}"""


def test_a_failed_analysis_keeps_its_reason_on_the_page(browser, server: str, tmp_path: Path) -> None:  # noqa: F811
    """The toast comes and goes; the reason stays in the results area, in plain words, and no
    output is left in an error state (red "Error" pills with no reason)."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(server, wait_until="domcontentloaded", timeout=60_000)
    page.wait_for_selector("#analyse", timeout=60_000)
    page.click("#analyse")  # no file
    page.wait_for_function("document.querySelector('#score').innerText.includes('No file received')", timeout=60_000)
    assert "Cannot analyse this file" in page.locator("#score").inner_text()

    broken = tmp_path / "broken.mp4"
    broken.write_text("this is not a video\n" * 50)
    page.locator("#video-file input[type=file]").set_input_files(str(broken))
    page.wait_for_timeout(1000)
    page.click("#analyse")
    page.wait_for_function("document.querySelector('#score').innerText.includes('broken.mp4')", timeout=60_000)
    score = page.locator("#score").inner_text()
    assert "Cannot analyse this file" in score and "not a readable media file" in score, score
    # Gradio marks the outputs of a failed event with an "Error" status: none here.
    pills = page.locator("#score .error, #contrib-plot .error, #transcript .error").count()
    assert pills == 0 and not errors, (pills, errors)
    page.close()


@pytest.mark.parametrize("width", [1400, 800, 400])
def test_the_results_read_at_every_width(browser, server: str, tmp_path: Path, width: int) -> None:  # noqa: F811
    """Analysed at a desktop, a tablet and a phone width: nothing wider than the page, no label,
    button or text cut off, and in every plot no text clipped, overlapping or under 12 px."""
    page = browser.new_page(viewport={"width": width, "height": 900})
    page.goto(server, wait_until="domcontentloaded", timeout=60_000)
    page.wait_for_selector("#analyse", timeout=60_000)
    # Every tab in sight, a phone's included (Gradio folds tabs that do not fit into a menu).
    for name in ("Analyse", "Fusion Lab", "Train"):
        assert page.get_by_role("tab", name=name, exact=True).is_visible(), name
    page.locator("#video-file input[type=file]").set_input_files(str(make_media("remuxed", tmp_path, "w.mp4")))
    page.wait_for_selector("#video-input video", timeout=30_000)
    page.click("#analyse")
    for elem in ("score-plot", "contrib-plot", "shares", "share-grid", "attention"):
        page.wait_for_selector(f"#{elem} .js-plotly-plot", timeout=ANALYSIS_MS)
    page.locator("#what-if-remove label", has_text="remove the voice").click()
    page.click("#what-if")
    page.wait_for_selector("#what-if-plot .js-plotly-plot", timeout=ANALYSIS_MS)
    page.get_by_text("Advanced: the gate values channel by channel").click()
    page.wait_for_selector("#gates-visual .js-plotly-plot", timeout=30_000)
    page.wait_for_timeout(1000)  # plotly's transitions
    scroll, client = page.evaluate("() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]")
    assert scroll <= client, f"the page is {scroll} px wide in a {client} px window"
    problems = page.evaluate(PLOT_TEXT_PROBLEMS) + page.evaluate(COMPONENT_TEXT_PROBLEMS)
    assert not problems, problems[:10]
    page.close()


# Every toast the page shows, as it appears (a MutationObserver: a toast that comes and goes between
# two looks is still caught). Installed before the page's own scripts run.
RECORD_TOASTS = """() => {
  window.__toasts = [];
  new MutationObserver(() => {
    for (const t of document.querySelectorAll('[data-testid=toast-body]')) {
      if (!t.__seen) { t.__seen = true; window.__toasts.push(t.innerText.replace(/\\s+/g, ' ').trim()); }
    }
  }).observe(document, {subtree: true, childList: true});
}"""
# Plays the player's video muted; true once its clock has moved.
PLAYS = """async () => { const v = document.querySelector('#video-input video[src]');
  if (!v) return false; v.muted = true; try { await v.play(); } catch (e) { return false; }
  return v.currentTime > 0; }"""


def test_every_accepted_video_format_previews(browser, server: str, tmp_path: Path) -> None:  # noqa: F811
    """An flv, avi, mkv or mov is shown as a playable preview; an mp4 or webm as itself; the
    preview plays, and no toast is ever raised (the player is never handed the original flv: it
    raised "Error: Video not playable" while the preview was being made); the flv's analysis
    reads the original."""
    from test_preview import FORMATS, clip_as

    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.add_init_script(f"({RECORD_TOASTS})()")
    page.goto(server, wait_until="domcontentloaded", timeout=60_000)
    page.wait_for_selector("#analyse", timeout=60_000)
    for suffix in sorted(FORMATS, key=lambda s: s == ".flv"):  # the flv last: it is analysed
        page.locator("#video-file input[type=file]").set_input_files(str(clip_as(suffix, tmp_path)))
        previewed = suffix not in (".mp4", ".webm")
        page.wait_for_function(
            "(previewed) => { const v = document.querySelector('#video-input video[src]');"
            " return v && v.readyState >= 1 && v.currentSrc.endsWith('.preview.mp4') === previewed }",
            arg=previewed,
            timeout=30_000,
        )
        page.wait_for_function(PLAYS, timeout=30_000, polling=250)
        if not previewed:  # and it stays itself: no preview replaces it
            page.wait_for_timeout(1500)
            src = page.evaluate("() => document.querySelector('#video-input video[src]').currentSrc")
            assert not src.endswith(".preview.mp4"), (suffix, src)
        page.wait_for_timeout(1000)  # a toast raised by the player's load comes within this
        toasts = page.evaluate("() => window.__toasts")
        assert toasts == [], (suffix, toasts)
        assert "not playable" not in page.locator("#video-input").inner_text().lower(), suffix
        if suffix != ".flv":  # emptying the upload box empties the player
            page.locator("#video-file button[aria-label='Clear']").first.click()
            page.wait_for_selector("#video-input video[src]", state="detached", timeout=10_000)
    page.click("#analyse")
    page.wait_for_selector("#contrib-plot .js-plotly-plot", timeout=ANALYSIS_MS)
    # The download is named after the file analysed: the original (a preview would give clip_preview-...).
    with page.expect_download(timeout=30_000) as download:
        page.click("#download")
    assert download.value.suggested_filename == "clip-sentiment.json"
    assert page.evaluate("() => window.__toasts") == []
    page.close()


# The Lab's pickers and bars at any width: a picker's value (the layer; a clip's label and marks,
# which come before its words) is not cut off, no bar's value label is under 10 px or cut by its
# plot's edge. Returns [problem, text].
LAB_READABLE = """() => {
  const out = [];
  const ctx = document.createElement('canvas').getContext('2d');
  for (const [id, whole] of [['lab-view-pick', true], ['lab-clip', false]]) {
    const input = document.querySelector(`#${id} input`);
    const style = getComputedStyle(input);
    ctx.font = `${style.fontSize} ${style.fontFamily}`;
    const text = whole ? input.value : input.value.split(':')[0];
    const room = input.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight);
    if (!text || ctx.measureText(text).width > room + 1) out.push(['picker cut off', id, text, room]);
  }
  for (const t of document.querySelectorAll('[id^=lab-] .js-plotly-plot .bartext')) {
    const plot = t.closest('.js-plotly-plot').getBoundingClientRect(), r = t.getBoundingClientRect();
    const id = t.closest('[id]').id;
    if (parseFloat(getComputedStyle(t).fontSize) < 10) out.push(['bar label under 10 px', id, t.textContent]);
    if (r.top < plot.top - 1 || r.bottom > plot.bottom + 1) out.push(['bar label cut', id, t.textContent]);
  }
  // A label over the attention's bars (the cue's "... (truth)") needs its own opaque background.
  const bars = [...document.querySelectorAll('#lab-attention .barlayer .point path')]
    .map(b => b.getBoundingClientRect());
  for (const a of document.querySelectorAll('#lab-attention .annotation')) {
    const r = a.querySelector('.annotation-text').getBoundingClientRect();
    const over = bars.some(b => b.left < r.right && b.right > r.left && b.top < r.bottom && b.bottom > r.top);
    const bg = a.querySelector('rect.bg');
    if (over && (!bg || parseFloat(getComputedStyle(bg).fillOpacity) < 0.5))
      out.push(['label over bars', 'lab-attention', a.textContent]);
  }
  return out;
}"""


@pytest.mark.parametrize("width", [1400, 800, 400])
def test_lab_from_a_link_trains_and_draws(browser, server: str, width: int) -> None:  # noqa: F811
    """A teacher's link opens the Fusion Lab with its settings; Train draws the loss curve, then
    the per-word shares of a test clip, readable on a desktop and a phone; another page (another
    session) has no model to show."""
    page = browser.new_page(viewport={"width": width, "height": 1000})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    # Two models side by side: three bars a group in the Shapley plots, the most crowded case.
    page.goto(server + "?lab=1&preset=voice-adds&clips=100&epochs=2&seed=3&compare=1", wait_until="domcontentloaded")
    page.wait_for_selector("#lab-train", state="visible", timeout=60_000)  # the Lab tab is the one shown
    page.wait_for_function(
        "() => (document.querySelector('#lab-link textarea, #lab-link input') || {}).value?.includes('clips=100')",
        timeout=30_000,
    )
    assert "loud, high voice" in page.locator("#lab-rule").inner_text()
    page.click("#lab-train")
    page.wait_for_selector("#lab-shares .js-plotly-plot", timeout=TRAINING_MS)
    assert page.locator("#lab-shares .js-plotly-plot .barlayer .point").count() >= 4
    assert page.locator("#lab-loss .js-plotly-plot .scatterlayer .trace").count() >= 2
    assert "Trained in" in page.locator("#lab-status").inner_text()
    assert "best additive model" in page.locator("#lab-results").inner_text()
    page.wait_for_selector("#lab-attention .js-plotly-plot", timeout=30_000)
    page.wait_for_timeout(1000)
    # The Lab follows the page's rules, for plots and components, and its own.
    problems = page.evaluate(PLOT_TEXT_PROBLEMS) + page.evaluate(COMPONENT_TEXT_PROBLEMS) + page.evaluate(LAB_READABLE)
    # The baselines' errors are named in the legend, where no curve crosses them.
    legend = page.locator("#lab-loss .legendtext").all_text_contents()
    assert any(t.startswith("best additive") for t in legend), legend
    assert not problems, problems[:10]
    scroll, client = page.evaluate("() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]")
    assert scroll <= client, f"the page is {scroll} px wide in a {client} px window"

    other = browser.new_page(viewport={"width": 1400, "height": 1000})
    other.goto(server + "?lab=1", wait_until="domcontentloaded")
    other.wait_for_selector("#lab-train", state="visible", timeout=60_000)
    assert other.locator("#lab-shares .js-plotly-plot").count() == 0
    other.close()
    page.close()
    assert not errors, errors


def test_the_link_a_teacher_hands_out_opens_the_same_step(browser, server: str) -> None:  # noqa: F811
    """The Lab's link is the page's own address with every current setting, at once after a
    lesson step is set up (never the previous step's second model), and a fresh browser opened
    on it shows the same settings."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(server + "?lab=1&clips=120&seed=5&flip=7&colour=red", wait_until="domcontentloaded")
    page.wait_for_selector("#lab-train", state="visible", timeout=60_000)
    link_value = "() => (document.querySelector('#lab-link textarea, #lab-link input') || {}).value || ''"
    page.wait_for_function(f"({link_value})().includes('clips=120')", timeout=30_000)
    # A link with a typo opens the nearest valid settings and says what it changed.
    status = page.locator("#lab-status").inner_text()
    assert "repaired" in status and "flip = 7 is above 1: set to 1" in status and "colour" in status, status
    assert "flip=1&" in page.evaluate(link_value)
    page.get_by_text("Lesson: six steps").click()  # the accordion
    page.wait_for_selector("#lab-step-go", state="visible", timeout=10_000)
    links = {}
    for step, second in (
        ("3. The face reverses the words", "compare=1&gates2=none"),
        ("4. What the words", "compare=0"),
    ):
        page.locator("#lab-step input").fill(step[:10])
        page.get_by_role("option", name=re.compile("^" + re.escape(step))).click()
        before = page.evaluate(link_value)
        page.click("#lab-step-go")
        page.wait_for_function(f"({link_value})() !== {before!r}", timeout=30_000)
        page.wait_for_timeout(500)  # any late handler would have rewritten it by now
        links[step] = page.evaluate(link_value)
        assert second in links[step], links[step]
    link = links["4. What the words"]
    assert link.startswith(server.rstrip("/") + "/?lab=1&preset=face-flips"), link
    assert "gradio_api" not in link and "seed=5" in link and "flip=0.45" in link  # the seed kept, the step's world
    page.close()

    fresh = browser.new_context(viewport={"width": 1400, "height": 1000})  # no cookies, no session
    other = fresh.new_page()
    other.goto(link, wait_until="domcontentloaded")
    other.wait_for_selector("#lab-train", state="visible", timeout=60_000)
    other.wait_for_function(f"({link_value})() === {link!r}", timeout=30_000)
    assert not other.locator("#lab-compare input").is_checked()
    assert other.locator("#lab-seed input").input_value() == "5"
    assert (
        "flip" in other.locator("#lab-rule").inner_text().lower() or "brows" in other.locator("#lab-rule").inner_text()
    )
    fresh.close()


@pytest.fixture(scope="module")
def fake_devices(tmp_path_factory) -> tuple[Path, Path]:
    """The MOSI clip as chromium's fake webcam (y4m) and microphone (wav): recording then
    captures a real face and real speech."""
    out = tmp_path_factory.mktemp("devices")
    cam, mic = out / "camera.y4m", out / "microphone.wav"
    ffmpeg("-i", str(CLIP), "-vf", "scale=320:-2", "-r", "10", "-pix_fmt", "yuv420p", str(cam))
    ffmpeg("-i", str(CLIP), "-ac", "1", "-ar", "48000", str(mic))
    return cam, mic


@pytest.fixture(scope="module")
def recording_browser(playwright, fake_devices):
    cam, mic = fake_devices
    devices = [
        "--use-fake-device-for-media-stream",
        "--use-fake-ui-for-media-stream",
        f"--use-file-for-fake-video-capture={cam}",
        f"--use-file-for-fake-audio-capture={mic}",
    ]
    b = playwright.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS + devices, headless=True)
    yield b
    b.close()


def _record(page, component: str, seconds: float) -> None:
    import time

    # The webcam's Record makes a MediaRecorder from the camera's stream, which arrives a moment
    # after access is granted: a click before then does nothing, so wait for live frames first.
    page.wait_for_function(
        f"""() => {{ const v = document.querySelector('#{component} video');
                    return !v || (v.srcObject && v.readyState >= 2); }}""",
        timeout=30_000,
    )
    page.locator(f"#{component} button", has_text="Record").first.click()
    stop = page.locator(f"#{component} button", has_text="Stop").first
    stop.wait_for(state="visible", timeout=30_000)
    time.sleep(seconds)
    stop.click()


def test_record_from_webcam_and_microphone(recording_browser, server: str) -> None:  # noqa: F811
    """Webcam and microphone capture through the page (chromium's fake devices play the MOSI
    clip): the recorded webm and audio go through the same pipeline, face and voice included."""
    context = recording_browser.new_context(
        permissions=["camera", "microphone"], viewport={"width": 1400, "height": 1000}
    )
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(server, wait_until="domcontentloaded", timeout=60_000)
    page.wait_for_selector("#analyse", timeout=60_000)

    page.get_by_text("Click to Access Webcam").click()
    _record(page, "video-input", 4.0)
    page.wait_for_selector("#video-input video[src]", timeout=30_000)  # the recording is uploaded
    page.click("#analyse")
    page.wait_for_selector("#contrib-plot .js-plotly-plot", timeout=ANALYSIS_MS)
    used = page.locator("#modalities").inner_text().split("Not used")[0]
    assert "the face (visual)" in used and "the voice (acoustic)" in used and "the words (text)" in used, used
    assert page.locator("#transcript").inner_text().strip()
    assert any(name in page.locator("#score").inner_text() for name in LABEL7_NAMES)

    page.goto(server, wait_until="domcontentloaded", timeout=60_000)  # a fresh page: no video
    page.wait_for_selector("#analyse", timeout=60_000)
    page.get_by_role("tab", name="Audio").click()
    page.locator("#audio-input button[aria-label='Record audio']").click()
    _record(page, "audio-input", 4.0)
    page.wait_for_selector("#audio-input audio[src], #audio-input .waveform-container", timeout=30_000)
    page.click("#analyse")
    page.wait_for_function("document.querySelector('#modalities').innerText.includes('Used:')", timeout=ANALYSIS_MS)
    modalities = page.locator("#modalities").inner_text()
    used, _, unused = modalities.partition("Not used")
    assert "the voice (acoustic)" in used and "the face (visual)" in unused, modalities
    assert not errors, errors
    context.close()


def _train_tab_with(browser, url: str, archive: Path, clips: int, errors: list[str] | None = None):
    """A new page on the Train tab with ``archive``'s clips in its table (its script errors
    collected into ``errors`` from the start)."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    if errors is not None:
        page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(url, wait_until="domcontentloaded", timeout=60_000)
    page.get_by_role("tab", name="Train", exact=True).click()
    page.wait_for_selector("#train-go", state="visible", timeout=60_000)
    page.locator("#train-files input[type=file]").set_input_files(str(archive))
    page.wait_for_function(
        f"document.querySelector('#train-note').innerText.includes('{clips} clips')", timeout=ANALYSIS_MS
    )
    return page


def test_train_on_labelled_clips_then_analyse_with_the_new_checkpoint(browser, server: str, tmp_path: Path) -> None:  # noqa: F811
    """The Train tab end to end: a zip of labelled clips (a voice corpus: the same neutral words in
    two voices, labelled by the voice) and one more clip labelled with the slider, fine-tuned from
    the words-only "sigmoid-gates"; the new checkpoint is in this page's picker (and no other's),
    downloads as a zip, and analyses a held-out clip with its voice branch no longer grey. The tab
    reads at 1400 and 400 px."""
    from test_train_tab import TRAINED, clip_name

    voices, archive = _voice_corpus(tmp_path)
    last = TRAINED - 1  # its female clip comes through the upload, labelled with the slider

    errors: list[str] = []
    page = _train_tab_with(browser, server, archive, 2 * TRAINED - 1, errors)
    n = 2 * TRAINED - 1
    slider = page.locator("#train-next-label input[type=number]")
    slider.fill("-2")
    slider.press("Enter")
    page.locator("#train-files input[type=file]").set_input_files(str(voices / clip_name("en-us+f3", last)))
    page.wait_for_function(
        f"document.querySelector('#train-note').innerText.includes('{n + 1} clips')", timeout=ANALYSIS_MS
    )
    assert "Ready to train" in page.locator("#train-note").inner_text()
    # The table draws only the rows in view: scroll to the last one, the clip the slider labelled.
    page.locator("#train-table .virtual-table-viewport").evaluate("e => { e.scrollTop = e.scrollHeight; }")
    page.wait_for_timeout(500)
    table = page.locator("#train-table").inner_text()
    assert f"{clip_name('en-us+f3', last)}\n-2" in table, table
    _pick(page, "train-base", "sigmoid-gates")
    page.click("#train-go")
    page.wait_for_function(
        "document.querySelector('#train-results').innerText.includes('now picked in the Analyse tab')",
        timeout=TRAINING_MS,
    )
    assert (
        f"Trained on {n + 1} clips: {n + 1} with a voice, 0 with a face" in page.locator("#train-status").inner_text()
    )
    results = page.locator("#train-results").inner_text()
    assert "the base sigmoid-gates:" in results and f"the voice: {n + 1} of the {n + 1} clips had a voice" in results
    # The voice rule is learnt: held-out error far below the words-only base's on the same clips.
    heldout = float(re.search(r"my-voice: ([0-9.]+)", results).group(1))
    base = float(re.search(r"sigmoid-gates: ([0-9.]+)", results).group(1))
    assert heldout < base / 2, results
    assert page.locator("#train-loss .js-plotly-plot .scatterlayer .trace").count() >= 3
    for width in (1400, 400):  # the tab follows the page's rules, for plots and components
        page.set_viewport_size({"width": width, "height": 1000})
        page.wait_for_timeout(1000)
        page.screenshot(path=str(tmp_path / f"train-{width}.png"), full_page=True)
        problems = page.evaluate(PLOT_TEXT_PROBLEMS) + page.evaluate(COMPONENT_TEXT_PROBLEMS)
        assert not problems, (width, problems[:10])
        scroll, client = page.evaluate(
            "() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]"
        )
        assert scroll <= client, f"the page is {scroll} px wide in a {client} px window"
    page.set_viewport_size({"width": 1400, "height": 1000})
    with page.expect_download(timeout=30_000) as download:
        page.click("#train-download")
    assert download.value.suggested_filename == "my-voice.zip"

    # The Analyse tab: the new checkpoint on a sentence it never heard; its voice branch is used.
    mine = "my-voice (this page only)"
    page.get_by_role("tab", name="Analyse", exact=True).click()
    _pick(page, "checkpoint", mine)
    page.get_by_role("tab", name="Audio").click()
    page.locator("#audio-input input[type=file]").set_input_files(str(voices / clip_name("en-us+f3", TRAINED)))
    page.wait_for_selector("#audio-input audio[src], #audio-input .waveform-container", timeout=30_000)
    page.click("#analyse")
    page.wait_for_function(f"document.querySelector('#timings').innerText.includes('{mine}')", timeout=ANALYSIS_MS)
    notes = page.locator("#branch-notes").inner_text()
    voice = next(line for line in notes.splitlines() if "text \u2192 acoustic" in line)
    assert "grey" not in voice, notes
    assert not errors, errors

    # Another page (another session) neither lists it nor has anything to download.
    other = browser.new_page(viewport={"width": 1400, "height": 1000})
    other.goto(server, wait_until="domcontentloaded", timeout=60_000)
    other.wait_for_selector("#analyse", timeout=60_000)
    other.locator("#checkpoint input").click()
    listed = other.locator("ul[role=listbox] li").all_inner_texts()
    assert "sigmoid-gates" in " ".join(listed) and not any("this page only" in o for o in listed), listed
    other.close()
    page.close()


# The boxes of elements by id: {id: {left, right, top, bottom}} (page coordinates).
BOXES = """(ids) => Object.fromEntries(ids.map(id => {
  const r = document.getElementById(id).getBoundingClientRect();
  return [id, {left: r.left, right: r.right, top: r.top + scrollY, bottom: r.bottom + scrollY}];
}))"""


def _under(box: dict, above: dict, gap: float = 40) -> bool:
    """``box`` starts right below ``above`` (within ``gap`` px) and shares some of its width."""
    return 0 <= box["top"] - above["bottom"] <= gap and box["left"] < above["right"] and box["right"] > above["left"]


def _beside(box: dict, other: dict) -> bool:
    """``box`` is to the right of ``other`` and spans some of its height."""
    return box["left"] >= other["right"] - 1 and box["top"] < other["bottom"] and box["bottom"] > other["top"]


@pytest.mark.parametrize("width", [1400, 800, 400])
def test_the_train_runs_progress_is_by_the_train_button(browser, server: str, width: int) -> None:  # noqa: F811
    """The status sits directly under Train and Stop, the loss curve beside them or directly
    under the status: where the eye is after pressing Train, at every width."""
    page = browser.new_page(viewport={"width": width, "height": 1000})
    page.goto(server, wait_until="domcontentloaded", timeout=60_000)
    page.get_by_role("tab", name="Train", exact=True).click()
    page.wait_for_selector("#train-go", state="visible", timeout=60_000)
    boxes = page.evaluate(BOXES, ["train-go", "train-stop", "train-status", "train-loss"])
    buttons = {
        "left": boxes["train-go"]["left"],
        "right": max(boxes["train-go"]["right"], boxes["train-stop"]["right"]),
        "top": boxes["train-go"]["top"],
        "bottom": max(boxes["train-go"]["bottom"], boxes["train-stop"]["bottom"]),
    }
    status, curve = boxes["train-status"], boxes["train-loss"]
    assert _under(status, buttons), (width, boxes)
    assert _beside(curve, buttons) or _under(curve, status), (width, boxes)
    page.close()


def _voice_corpus(tmp_path: Path) -> tuple[Path, Path]:
    """The Train tab's clips: the same neutral words in two voices, labelled by the voice (every
    trained clip but the last female one in a zip); returns (the clips' folder, the zip)."""
    from test_train_tab import SENTENCES, TRAINED, VOICES, clip_name, corpus_zip

    from conftest import espeak

    voices = tmp_path / "voices"
    voices.mkdir()
    for i, sentence in enumerate(SENTENCES):
        for voice in VOICES:
            espeak(voice, sentence, voices / clip_name(voice, i))
    rows = [f'{clip_name(v, i)},{y:+g},"{SENTENCES[i]}"' for i in range(TRAINED) for v, y in VOICES.items()]
    return voices, corpus_zip(voices, tmp_path / "clips.zip", rows[:-1])


def test_stop_always_ends_settled(browser, server: str, tmp_path: Path) -> None:  # noqa: F811
    """Stop during training: the run itself says it is stopping, then how it ended; once Train
    is back nothing says "Stopping" any more and Stop is off (the Stop button's own reply writes
    no status that could arrive after the run's last)."""
    from test_train_tab import TRAINED

    _, archive = _voice_corpus(tmp_path)
    page = _train_tab_with(browser, server, archive, 2 * TRAINED - 1)
    page.click("#train-go")
    page.wait_for_function(
        "document.querySelector('#train-status').innerText.includes('Training \u2014')", timeout=TRAINING_MS
    )
    page.click("#train-stop")
    page.wait_for_function("!document.querySelector('#train-go').disabled", timeout=TRAINING_MS)
    status = page.locator("#train-status").inner_text()
    assert "Stopped by you" in status and "Stopping" not in status, status
    assert page.evaluate("document.querySelector('#train-stop').disabled")
    page.wait_for_timeout(1000)  # any late reply to the Stop click has arrived by now
    status = page.locator("#train-status").inner_text()
    assert "Stopped by you" in status and "Stopping" not in status, status
    assert page.evaluate("document.querySelector('#train-stop').disabled")
    page.close()
