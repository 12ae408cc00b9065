"""What the page says, written once: its introduction and the help beside each view.
(Sentences about one clip's explanation are made in `msa.explain.wording`.)"""

from __future__ import annotations

from ..features import ACCEPTED

INTRO = f"""# How does this clip feel?
Upload or record a short opinion clip: a {ACCEPTED} file. The app transcribes it, measures the
voice and the face, and predicts the sentiment on a scale from **-3** (strongly negative) to
**+3** (strongly positive). Then it shows *how* the model got there: how much each word takes in
from the voice and the face, where in the clip each word looks, and how much each modality moved
the score. Ask "what if" to hear the clip without its voice, its face or with other words.
"""

SHARES_HELP = """Each word of the transcript is updated twice in each branch (two layers) by what it
finds in the voice (**text \u2192 acoustic**) or the face (**text \u2192 visual**). A bar is how much of
that update came from the voice or the face: 0% = the word ignored it, 100% = the word was replaced
by it. Grey rows are branches that had no real voice or face to look at, here or ever in training:
what they took in is a placeholder the model learned (a *stand-in*), not evidence from this clip.
How the two gates make the update, and how the share is measured exactly: *Words used on this
page*, at the bottom."""

ATTENTION_HELP = """Pick a branch and layer, then a word (or click a word in the coloured transcript): the
curve is where that word looks in the voice or the face over time (its attention, the mean over
heads unless you pick one). The shaded band is when the word was spoken. Frames of the video and
the voice's loudness and pitch share the time axis."""

GATES_HELP = """The gate values themselves, channel by channel: words across, channels down. With the
paper's LayerNorm gates single values are hard to read (each word's values are centred near 0); the
shares above are the readable summary."""

SHAPLEY_HELP = """The bars start at the score the model gives with **no** modality (each replaced by a
learned stand-in), then add each modality's exact **Shapley value**: its average effect on the score
over all 8 ways of switching the three modalities on and off. They add up to the final score exactly.
A modality the clip does not carry contributes 0."""

LAB_INTRO = """# Fusion Lab: watch gated fusion learn
Pick a **world**: short synthetic clips of words, a voice and a face whose sentiment follows a rule
you can read in one sentence. Then **train** the paper's model on it (a small one, in seconds) and
watch its error fall. Afterwards every view of the Analyse tab works on any clip of the world,
beside the truth: the rule's own Shapley values and the moment where each cue really is. Change
the world or the model, train again, compare. The lesson below walks through six questions."""

LAB_VIEWS_HELP = """**The baselines.** *Same model, words alone* is the model trained on the same clips
with the voice and the face removed. *Best additive model* gives each modality's state its own
number and adds them up (fitted from the world's own parts, not trained): a model that beats it
has learned how the modalities combine, not only what each says alone. Where the world only adds
(no flip, as with a missing face), that sum is the rule itself, read without the streams' noise:
no trained model can beat it there, and the gap says how much the noise costs."""

# A Lab run with settings someone already trained on this server: served from the kept run.
REPLAYED = "Replay of a run trained on this server before (the same settings give the same numbers)"
FOLLOWING = "Following the identical run another page is training"
FOLLOWED = "Followed the identical run another page trained"
STEP_PREPARING = "*This step's run is still being prepared on the server: Train follows it as it trains.*"

# A run asked for while the server's resident memory is past its budget (`MemoryBudget`).
MEMORY_FULL = (
    "The server is at its memory budget ({used:.1f} of {budget:.1f} GB in use): new runs start again "
    "as other pages close. Try again in a minute."
)

# Where a link's settings could not all be read as they were (then each change, in a list).
LINK_REPAIRED = "**This link's settings were repaired:** "

# Under a flipped clip's rule: why the rule's own Shapley values do not read as "the words add ...".
FLIPPED_CREDIT = """The reversal needs both the words and the raised brows, so Shapley values share
its credit between them: the rule's Shapley values say who gets credit, the rule above how the label
is made, and on a flipped clip the two differ."""

LAB_SAVE_HELP = """Saving writes the picked model as a checkpoint folder and lists it in the Analyse tab.
It learned synthetic cues: on a real clip only its words mean something (its model card says why)."""

TRAIN_INTRO = """# Teach the model your voice and face
The default checkpoint reads the words and the voice (its voice learnt from actors' emotional
speech); it has never seen a face. Give it clips of your own, each with a sentiment label, and it
refines what the **voice** adds and learns the **face**. The words' encoder stays frozen, but the
fusion and the head that read it train, so how much the words count can change. The result is a new
checkpoint, picked for you in the Analyse tab, with a model card that says what it saw and how well it
does on clips it did not train on, beside the checkpoint it started from and beside always giving one answer."""

TRAIN_ADD_HELP = """**Add clips**: upload video or audio files (or record one below), or a **zip** holding the
clips and one labels CSV with the columns `file,label` (and optionally `text`, the spoken words, and
`speaker`). Each clip you add gets the label on the slider: set it, then add that kind of clip.
In the table a label is a number from -3 (strongly negative) to +3 (strongly positive) or a word:
positive, neutral, negative (or strongly / weakly ...). The words (optional) replace speech
recognition; a speaker's name (optional) keeps each person's clips together when the error is
measured on clips the model did not see. Twenty clips or more, from more
than one person, make a checkpoint worth trusting."""

TRAIN_TEXT_PATH_HELP = """The base checkpoint's score of the words becomes each clip's label (the teacher):
no labels needed, but the model then learns to agree with the words, not what the voice or face
add. The model card says so."""

TRAIN_PRIVATE_HELP = """Your fine-tuned checkpoints are this page's own: no other visitor can list, pick or
download them, and they are deleted when you close the page or after {time} unused (at
most {count} are kept; a new one replaces the oldest)."""

TRAIN_SAVE_HELP = """**Save** writes the picked checkpoint, with its model card, as `checkpoints/NAME` and
lists it in the Analyse tab for everyone using this server (a folder of that name that is not a
fine-tuned checkpoint is never replaced)."""

GLOSSARY = """**Score.** The model's sentiment for the whole clip, from -3 (strongly negative) to +3
(strongly positive); CMU-MOSI's people rated clips on the same scale (the examples show their rating).

**Modality.** One kind of input: the words (*text*), the voice (*acoustic*: what Whisper's encoder
hears in the speech, 512 numbers, with 21 of loudness, pitch and the sound's shape, 50 times a
second; older checkpoints, a voice taught from scratch on a few clips, and the Fusion Lab read the 21
alone) or the face (*visual*: 52 facial movements and
the head's pose, 5 times a second).

**Branch.** The words look at one other modality: *text → acoustic* (the voice) and *text →
visual* (the face), each in two layers.

**Gates.** In each layer two sets of numbers per word decide how much of the word to keep (the
*retain* gate) and how much of what it found in the voice or face to let in (the *fusion* gate):
the new word is `LayerNorm(fusion \u00d7 found + retain \u00d7 word)`. The **share** is the part of that
update that came from the voice or the face, measured on the two terms after the LayerNorm's
centring, which is exact whatever the gates' scale (docs/app.md, "The explanation").

**Attention.** Where in time a word looks in the voice or the face: its weights over the frames add
up to 1.

**Shapley value.** How much a modality moved the score: the average change when it is added, over
every order of adding the three. They add up exactly to the score minus the score with none.

**Stand-in (placeholder).** What the model gets in place of a missing modality: a learned vector, the
same for every clip. A view that only saw the stand-in is drawn grey: it is no evidence from the clip.

**dB below full scale.** Loudness relative to the loudest sound a recording can hold: 0 is the
maximum, -60 is near silence."""

# Shown by the run itself once Stop was pressed (the Stop button writes no status: a status from
# Stop's own reply could arrive after the run's last and stay on screen).
TRAIN_STOPPING = "Stopping after this epoch: no checkpoint will be made from this run\u2026"
