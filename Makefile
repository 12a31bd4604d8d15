# sheetid — every target installs what it needs, so a fresh Debian machine with Python 3.11 only
# needs `make demo` or `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
APT_PACKAGES := python3-venv fluidsynth fluid-soundfont-gm musescore-general-soundfont-small \
	csound-soundfont timgm6mb-soundfont poppler-utils \
	timidity freepats  # the robust query set's synthesizer, unseen in training (benchmarks/robust.py)
APT_TEST_PACKAGES := chromium chromium-driver postgresql  # browser end-to-end test; library tests on PostgreSQL
APT_DATA_PACKAGES := musescore3  # engraves a share of the training pieces (model/data/musescore.py)
APT_BENCH_PACKAGES := musescore3 lilypond  # system detection on other engravers' PDFs (`eval systems --engraver`)
export SHEETID_DATA_DIR ?= $(CURDIR)/data

.PHONY: install system-deps test lint demo data data-extra train weights corpus-library eval bench bench-runtime docker-smoke clean

system-deps:
	@missing=$$(for p in $(APT_PACKAGES) $(EXTRA_APT); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing system packages:$$missing"; \
		SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev,onnx]'  # onnx: the ONNX Runtime trunk's tests run too
	touch $(STAMP)

install: system-deps $(STAMP)

lint: install
	$(PY) -m ruff check .
	$(PY) -m mypy model indexer service benchmarks cli.py

test: EXTRA_APT = $(APT_TEST_PACKAGES) $(APT_DATA_PACKAGES)
test: install lint
	$(PY) -m pytest -q
	SHEETID_TEST_VECTOR_STORE=milvus-lite $(PY) -m pytest -q tests/test_indexer.py tests/test_jobs.py tests/test_api.py
	PY=$(PY) scripts/postgres_tests.sh

demo: install
	$(VENV)/bin/sheetid data build --split test --out data/dataset
	$(VENV)/bin/sheetid demo-library --dataset data/dataset
	@echo "sheetid demo: open http://127.0.0.1:8000/ (example recordings in data/examples/)"
	$(VENV)/bin/sheetid serve --host 127.0.0.1 --port 8000

data: EXTRA_APT = $(APT_DATA_PACKAGES)
data: install
	$(VENV)/bin/sheetid data build

# The extra training pieces (model/data/corpus.py EXTRA_SPLIT), built apart: `sheetid train --set extra_dataset=data/dataset-extra`.
data-extra: EXTRA_APT = $(APT_DATA_PACKAGES)
data-extra: install
	$(VENV)/bin/sheetid data build --split train-extra --out data/dataset-extra

train: install
	$(VENV)/bin/sheetid train

# The shipped weights' recipe from scratch, on CPU: the long hinge run's 23 epochs of 200 steps on raw
# input levels and the three plain renditions (about 5.5 h on 2 cores; model/MODEL.md, step 7), then 5
# epochs from its weights with levelled inputs and the timbre, EQ and tail augmentation (about 1 h; step
# 10), then 4 epochs with the first five renditions (timidity and other keyboard voices; about 50 min;
# step 11: its best epoch, 3), then 4 epochs with all seven (two performed in a room; about 25 min; step
# 15: its best epoch, 4), then 3 epochs of the same at a quarter of the learning rate (about 28 min; step
# 16: its best epoch, 1, ships). Writes runs/weights/ (copy sheetid.pt over the shipped file).
weights: data
	$(VENV)/bin/sheetid train --out runs/weights/long.pt --minutes 600 --max-epochs 23 --steps-per-epoch 200 --set loss=hinge \
		--set renditions=3 --set level_inputs=False --set eq_db=6.0 --set "tail_decay=(0.2,0.6)" --set timbre_prob=0.0
	$(VENV)/bin/sheetid train --out runs/weights/robust.pt --minutes 120 --max-epochs 5 --steps-per-epoch 200 --set loss=hinge \
		--set renditions=3 --set init=runs/weights/long.pt
	$(VENV)/bin/sheetid train --out runs/weights/voices.pt --minutes 120 --max-epochs 4 --steps-per-epoch 200 --set loss=hinge \
		--set renditions=5 --set init=runs/weights/robust.pt
	$(VENV)/bin/sheetid train --out runs/weights/rooms.pt --minutes 60 --max-epochs 4 --steps-per-epoch 200 --set loss=hinge \
		--set init=runs/weights/voices.pt
	$(VENV)/bin/sheetid train --out runs/weights/lowlr.pt --minutes 55 --max-epochs 3 --steps-per-epoch 200 --set loss=hinge \
		--set init=runs/weights/rooms.pt --set lr=0.0005
	$(VENV)/bin/sheetid train --out runs/weights/sheetid.pt --minutes 40 --max-epochs 3 --steps-per-epoch 200 --set loss=hinge \
		--set init=runs/weights/lowlr.pt --set lr=0.0005 --set "stretch=(0.56,1.25)"

# Every corpus PDF indexed through the real path: the library the benchmarks query (resumable).
corpus-library: EXTRA_APT += $(APT_DATA_PACKAGES)
corpus-library: install
	$(VENV)/bin/sheetid data build
	$(VENV)/bin/sheetid eval library --dataset data/dataset --library data/corpus-library

eval: EXTRA_APT = $(APT_BENCH_PACKAGES)
eval: system-deps corpus-library
	$(VENV)/bin/sheetid eval snippets
	$(VENV)/bin/sheetid eval systems
	$(VENV)/bin/sheetid eval systems --degrade scan
	$(VENV)/bin/sheetid eval systems --engraver musescore
	$(VENV)/bin/sheetid eval systems --engraver lilypond
	$(VENV)/bin/sheetid eval calibrate
	$(VENV)/bin/sheetid eval robust-queries --split test
	$(VENV)/bin/sheetid eval identify
	$(VENV)/bin/sheetid eval align

bench: corpus-library
	$(VENV)/bin/sheetid bench --scale 421000 --scale 1000000
	$(VENV)/bin/sheetid bench --vectors-only --vector-scale 1000000 --vector-scale 10000000

# The dense trunk under each CPU runtime (eager, folded channels-last, 1 thread, torch.compile, ONNX Runtime, bf16).
bench-runtime: $(STAMP)
	$(PY) -m pip install -q -e '.[onnx]'
	$(VENV)/bin/sheetid bench runtime

# Builds the image on a private dockerd and runs the compose demo for real (slow; not part of `make test`).
docker-smoke:
	scripts/docker_smoke.sh

clean:
	rm -rf $(VENV) build *.egg-info
