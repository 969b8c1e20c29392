# streamwise - the one build. `make` builds the core, the runner and the
# Python extension in place; `make demo` and `make test` first install any
# missing Debian packages. See README.md.

PYTHON  ?= /usr/bin/python3
CC      ?= cc
BUILD   := build
BIN     := $(BUILD)/bin

WARN    := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes
# -ffp-contract=off: no fused multiply-add, so every host computes the same
# bits whatever -march says; no -ffast-math anywhere, for the same reason.
CSTD    := -std=c11 -D_POSIX_C_SOURCE=200809L -ffp-contract=off
OPT     ?= -O2 -g
CFLAGS  := $(CSTD) $(OPT) -fPIC -fvisibility=hidden $(WARN) $(EXTRA_CFLAGS)
CPPFLAGS:= -Icsrc/include -Icsrc -I$(BUILD)/gen
# The git commit the core was built from, "+dirty" when the tree had changes;
# written into a header only when it changes, so that sw_version.o (and
# nothing else) is rebuilt when HEAD moves.
BUILD_ID:= $(shell git rev-parse --short=8 HEAD 2>/dev/null || echo unknown)$(shell git diff --quiet HEAD -- csrc 2>/dev/null || echo +dirty)
LIBS    := -ljansson -lyajl -lxxhash -lsodium -lz -lopenblas -lm -pthread
# The io adapters (build/libswio.a) and what they link; each adapter builds
# as a stub returning SW_E_UNSUPPORTED when its library is missing.
HAVE_SQLITE := $(shell pkg-config --exists sqlite3 && echo 1)
HAVE_PQ := $(shell pkg-config --exists libpq && echo 1)
HAVE_RDKAFKA := $(shell pkg-config --exists rdkafka && echo 1)
HAVE_HDF5 := $(shell pkg-config --exists hdf5 && echo 1)
HAVE_AVRO := $(shell pkg-config --exists avro-c && echo 1)
IO_CFLAGS := $(if $(HAVE_SQLITE),-DSW_HAVE_SQLITE) \
             $(if $(HAVE_PQ),-DSW_HAVE_PQ $(shell pkg-config --cflags libpq)) \
             $(if $(HAVE_RDKAFKA),-DSW_HAVE_RDKAFKA) \
             $(if $(HAVE_HDF5),-DSW_HAVE_HDF5 $(shell pkg-config --cflags hdf5)) \
             $(if $(HAVE_AVRO),-DSW_HAVE_AVRO)
IO_LIBS := $(if $(HAVE_SQLITE),-lsqlite3) $(if $(HAVE_PQ),-lpq)
KAFKA_LIBS := $(if $(HAVE_RDKAFKA),-lrdkafka)
HDF5_LIBS := $(if $(HAVE_HDF5),$(shell pkg-config --libs hdf5))
AVRO_LIBS := $(if $(HAVE_AVRO),-lavro)

CORE_SRC := csrc/sw_err.c csrc/sw_alloc.c csrc/sw_version.c csrc/sw_conf.c \
            csrc/sw_events.c \
            csrc/sw_view.c csrc/sw_thread.c csrc/sw_coll.c csrc/sw_model.c \
            csrc/sw_model_io.c \
            csrc/learn/sw_linear.c csrc/learn/sw_als.c csrc/learn/sw_als_topn.c \
            csrc/learn/sw_gbdt.c csrc/learn/sw_gbdt_bins.c \
            csrc/learn/sw_gbdt_grow.c csrc/learn/sw_gbdt_train.c \
            csrc/learn/sw_gbdt_export.c \
            csrc/pipeline/sw_spec.c csrc/pipeline/sw_keytab.c \
            csrc/pipeline/sw_pipeline.c csrc/pipeline/sw_ops.c \
            csrc/pipeline/sw_result.c \
            csrc/pipeline/sw_pipeline_io.c \
            csrc/pipeline/sw_privacy.c csrc/pipeline/sw_join.c \
            csrc/pipeline/sw_bundle.c csrc/pipeline/sw_changes.c
CORE_OBJ := $(CORE_SRC:csrc/%.c=$(BUILD)/obj/%.o)
IO_SRC   := csrc/io/sw_registry.c csrc/io/sw_registry_pg.c csrc/io/sw_track.c \
            csrc/io/sw_broker.c \
            csrc/io/sw_kafka_conf.c csrc/io/sw_kafka_source.c \
            csrc/io/sw_kafka_sink.c \
            csrc/io/sw_json_decode.c csrc/io/sw_avro_decode.c \
            csrc/io/sw_h5_util.c csrc/io/sw_h5_writer.c \
            csrc/io/sw_h5_source.c
IO_OBJ   := $(IO_SRC:csrc/%.c=$(BUILD)/obj/%.o)
ALL_LIBS := $(BUILD)/libswio.a $(BUILD)/libswcore.a
TEST_SRC := $(wildcard tests/c/test_*.c)
HDRS     := csrc/include/streamwise.h csrc/sw_internal.h csrc/sw_blas.h \
            csrc/pipeline/sw_pipeline_int.h csrc/learn/sw_gbdt_int.h \
            csrc/io/sw_kafka_conf.h \
            csrc/io/sw_h5.h csrc/io/sw_avro.h \
            csrc/io/sw_registry_int.h csrc/io/sw_track.h

# Debian packages the build, the tests and the demo need.
APT_PKGS := build-essential pkg-config libsodium-dev zlib1g-dev valgrind \
            libmicrohttpd-dev libyajl-dev clang libclang-rt-14-dev \
            libsqlite3-dev libopenblas-dev libjansson-dev libxxhash-dev \
            librdkafka-dev kcat python3-confluent-kafka python3-tqdm \
            libhdf5-dev python3-h5py libavro-dev python3-avro python3-xgboost \
            python3 python3-dev python3-setuptools python3-numpy python3-scipy \
            python3-pytest python3-sklearn python3-matplotlib python3-pandas \
            python3-nbclient python3-nbformat python3-ipykernel \
            python3-pip python3-venv postgresql libpq-dev python3-psycopg2 \
            python3-mypy python3-dask python3-distributed

.PHONY: FORCE all lib runner ext deps demo test ctest sanitize sanitize-c \
        sanitize-python \
        memcheck pytest \
        print-link-flags \
        nbtest check-conf conf-doc bench peers clean fuzz fuzz-build fuzz-smoke

all: lib runner ext $(BIN)/streamwise

lib: $(BUILD)/libswcore.a $(BUILD)/libswio.a

$(BUILD)/obj/%.o: csrc/%.c $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -c $< -o $@

$(BUILD)/gen/sw_build_id.h: FORCE
	@mkdir -p $(dir $@)
	@echo '#define SW_BUILD_ID "$(BUILD_ID)"' > $@.tmp
	@cmp -s $@.tmp $@ && rm -f $@.tmp || mv $@.tmp $@

$(BUILD)/obj/sw_version.o: $(BUILD)/gen/sw_build_id.h

# The ALS kernels are loops over factors that only vectorize at -O3; the
# code fixes the order of every sum, so the result is the same either way.
$(BUILD)/obj/learn/sw_als.o $(BUILD)/obj/learn/sw_als_topn.o: OPT += -O3
$(BUILD)/obj/pipeline/sw_pipeline.o $(BUILD)/obj/pipeline/sw_keytab.o: OPT += -O3

FORCE:

$(BUILD)/libswcore.a: $(CORE_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/obj/io/%.o: csrc/io/%.c $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(IO_CFLAGS) $(CFLAGS) -c $< -o $@

$(BUILD)/libswio.a: $(IO_OBJ)
	@rm -f $@
	ar rcs $@ $^

runner: $(BIN)/sw-serve $(BIN)/sw-broker

$(BIN)/sw-broker: csrc/runner/sw_broker_cli.c $(ALL_LIBS)
	@mkdir -p $(BIN)
	$(CC) $(CPPFLAGS) $(CFLAGS) $< $(ALL_LIBS) $(KAFKA_LIBS) $(HDF5_LIBS) $(AVRO_LIBS) $(LIBS) -o $@

RUN_SRC := csrc/runner/sw_serve.c csrc/runner/sw_rows.c csrc/runner/sw_run.c csrc/runner/sw_job.c \
           csrc/runner/sw_metrics.c csrc/runner/sw_reload.c \
           csrc/runner/sw_tenants.c csrc/runner/sw_outputs.c \
           csrc/runner/sw_emit.c csrc/runner/sw_learn.c csrc/runner/sw_evaluate.c \
           csrc/runner/sw_checkpoint.c csrc/runner/sw_tasks.c \
           csrc/runner/sw_repartition.c
$(BIN)/sw-serve: $(RUN_SRC) csrc/runner/sw_run.h csrc/runner/sw_run_int.h \
                 csrc/runner/sw_rows.h $(ALL_LIBS)
	@mkdir -p $(BIN)
	$(CC) $(CPPFLAGS) -Icsrc/runner $(CFLAGS) $(RUN_SRC) $(ALL_LIBS) \
	    $(IO_LIBS) $(KAFKA_LIBS) $(HDF5_LIBS) $(AVRO_LIBS) -lmicrohttpd \
	    $(LIBS) -o $@

# `streamwise inspect FILE` etc. for a build in place (pip installs its own).
$(BIN)/streamwise: Makefile
	@mkdir -p $(BIN)
	@printf '%s\n' '#!/bin/sh' \
	    '# streamwise command line, run from the build in place' \
	    'root=$$(cd "$$(dirname "$$0")/../.." && pwd)' \
	    'PYTHONPATH="$$root/python$${PYTHONPATH:+:$$PYTHONPATH}" exec $(PYTHON) -m streamwise "$$@"' > $@
	@chmod +x $@

# The extension links build/libswcore.a; setup.py never compiles csrc/.
ext: $(ALL_LIBS) $(wildcard python/streamwise/_ext/*.[ch])
	$(PYTHON) setup.py -q build_ext --inplace

# ---- tests ----------------------------------------------------------------

$(BIN)/sw-tests: $(TEST_SRC) tests/c/sw_test.h $(ALL_LIBS)
	@mkdir -p $(BIN)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(IO_CFLAGS) -Itests/c $(TEST_SRC) $(ALL_LIBS) \
	    $(IO_LIBS) $(KAFKA_LIBS) $(HDF5_LIBS) $(AVRO_LIBS) $(LIBS) -o $@

ctest: $(BIN)/sw-tests
	cd tests/c && ../../$(BIN)/sw-tests

# The C tests again, core and all, under AddressSanitizer and UBSan, then
# the Python tests against an instrumented extension (sanitize-python).
sanitize: sanitize-c sanitize-python

sanitize-c:
	$(MAKE) --no-print-directory BUILD=$(BUILD)/asan \
	    OPT="-O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all" \
	    LIBS="-fsanitize=address,undefined $(LIBS)" $(BUILD)/asan/bin/sw-tests
	cd tests/c && ASAN_OPTIONS=detect_leaks=1 \
	    UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	    ../../$(BUILD)/asan/bin/sw-tests

# The Python tests against an ASan/UBSan build of the extension and of the
# core it links (Python itself is not instrumented: libasan is preloaded,
# leaks are not checked, since CPython keeps its objects at exit). The
# package is a directory of links to python/streamwise beside the
# instrumented _sw, so nothing in the tree changes; PYTEST_ARGS narrows.
SAN_FLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer \
             -fno-sanitize-recover=all
SAN_PY    := $(BUILD)/asan/python
# make test's share (about 90 s): the tests that hand numpy, scipy, pandas
# and Python objects to the extension, without the broker and database
# tests, which make sanitize runs too.
SAN_PYTESTS := $(addprefix tests/python/test_,extension.py api.py hostile.py \
               pipeline.py decode_rules.py conf.py model_file.py bundle.py \
               hdf5.py linear_reference.py prequential_metrics.py als.py \
               gbdt.py replay.py)
EXT_SUFFIX = $(shell $(PYTHON) -c 'import sysconfig; print(sysconfig.get_config_var("EXT_SUFFIX"))')
sanitize-python: all
	$(MAKE) --no-print-directory BUILD=$(BUILD)/asan \
	    OPT="-O1 -g $(SAN_FLAGS)" LIBS="$(SAN_FLAGS) $(LIBS)" \
	    $(BUILD)/asan/libswcore.a $(BUILD)/asan/libswio.a
	rm -rf $(SAN_PY) && mkdir -p $(SAN_PY)/streamwise
	for f in python/streamwise/*; do \
	    case $$f in *.so) ;; *) ln -s $(CURDIR)/$$f $(SAN_PY)/streamwise/ ;; esac; \
	done
	ln -s $(CURDIR)/$(BIN) $(SAN_PY)/streamwise/bin
	$(CC) -shared -fPIC -std=c11 -O1 -g $(SAN_FLAGS) -ffp-contract=off \
	    -Icsrc/include -Ipython/streamwise/_ext \
	    -I$$($(PYTHON) -c 'import sysconfig; print(sysconfig.get_paths()["include"])') \
	    -I$$($(PYTHON) -c 'import numpy; print(numpy.get_include())') \
	    python/streamwise/_ext/*.c $(BUILD)/asan/libswio.a $(BUILD)/asan/libswcore.a \
	    $(IO_LIBS) $(KAFKA_LIBS) $(HDF5_LIBS) $(AVRO_LIBS) $(LIBS) \
	    -o $(SAN_PY)/streamwise/_sw$(EXT_SUFFIX)
	LD_PRELOAD=$$($(CC) -print-file-name=libasan.so) \
	ASAN_OPTIONS=detect_leaks=0:allocator_may_return_null=1 \
	UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	PYTHONPATH=$(SAN_PY) \
	    $(PYTHON) -m pytest -q -p no:cacheprovider $(or $(PYTEST_ARGS),tests/python)

memcheck: $(BIN)/sw-tests
	cd tests/c && valgrind -q --leak-check=full --error-exitcode=3 \
	    ../../$(BIN)/sw-tests

pytest: all
	PYTHONPATH=python $(PYTHON) -m pytest -q tests/python

nbtest: all
	PYTHONPATH=$(CURDIR)/python $(PYTHON) tests/run_notebooks.py notebooks

conf-doc: runner
	$(BIN)/sw-serve --config-doc > CONFIGURATION.md

check-conf: runner
	@$(BIN)/sw-serve --config-doc | diff -u CONFIGURATION.md - \
	    || { echo "CONFIGURATION.md is stale: run make conf-doc"; exit 1; }

test: deps
	$(MAKE) --no-print-directory all
	$(MAKE) --no-print-directory check-conf
	@! grep -rlE '#include *[<"](Python|numpy/)' csrc \
	    || { echo "csrc/ must not include Python or numpy headers"; exit 1; }
	$(MAKE) --no-print-directory ctest
	$(MAKE) --no-print-directory sanitize-c
	$(MAKE) --no-print-directory sanitize-python PYTEST_ARGS="$(SAN_PYTESTS)"
	$(MAKE) --no-print-directory fuzz-smoke
	$(MAKE) --no-print-directory nbtest
	$(MAKE) --no-print-directory pytest

demo: deps
	$(MAKE) --no-print-directory all
	PYTHONPATH=python $(PYTHON) experiments/demo.py

# The peers (LightGBM, implicit, River, MLflow, xgboost, scikit-learn),
# pinned in benchmarks/peers.txt, in a virtual environment over Debian's
# Python that keeps Debian's numpy and scipy, which the extension is built
# against. The benchmarks run on its interpreter.
PEERS    := $(BUILD)/peers
PEERS_PY := $(PEERS)/bin/python

peers: $(PEERS)/.installed

$(PEERS)/.installed: benchmarks/peers.txt
	$(PYTHON) -m venv --system-site-packages $(PEERS)
	$(PYTHON) -c 'import numpy, scipy; print(f"numpy=={numpy.__version__}\nscipy=={scipy.__version__}")' > $(BUILD)/peers-constraints.txt
	$(PEERS_PY) -m pip install -q --disable-pip-version-check -c $(BUILD)/peers-constraints.txt -r benchmarks/peers.txt
	touch $@

bench: all peers
	@echo "load average before: $$(cat /proc/loadavg)"
	PYTHONPATH=python $(PEERS_PY) benchmarks/online_linear.py
	PYTHONPATH=python $(PEERS_PY) benchmarks/tracking.py
	PYTHONPATH=python $(PEERS_PY) benchmarks/pipeline.py
	PYTHONPATH=python $(PEERS_PY) benchmarks/replay.py
	OPENBLAS_NUM_THREADS=1 PYTHONPATH=python $(PEERS_PY) benchmarks/als.py
	PYTHONPATH=python $(PEERS_PY) benchmarks/gbdt.py --contention --callgrind
	PYTHONPATH=python $(PEERS_PY) benchmarks/runner.py
	PYTHONPATH=python $(PEERS_PY) benchmarks/scaleout.py
	PYTHONPATH=python $(PEERS_PY) benchmarks/dask_gbdt.py
	@echo "load average after: $$(cat /proc/loadavg)"

# ---- fuzzing (libFuzzer, clang; docs/security.md) -------------------------

FUZZ_TARGETS := model spec checkpoint decode avro rows
FUZZ_BUILD   := $(BUILD)/fuzz
FUZZ_SAN     := -fsanitize=address,undefined -fno-sanitize-recover=all
FUZZ_SECONDS ?= 600

# The core and io archives again, instrumented, and one binary a target
# (fuzz_rows also takes sw-serve's row parsers, csrc/runner/sw_rows.c).
fuzz-build: all
	$(MAKE) --no-print-directory BUILD=$(FUZZ_BUILD) CC=clang \
	    OPT="-O1 -g -fsanitize=fuzzer-no-link $(FUZZ_SAN)" \
	    $(FUZZ_BUILD)/libswcore.a $(FUZZ_BUILD)/libswio.a
	@mkdir -p $(FUZZ_BUILD)/bin
	@for t in $(FUZZ_TARGETS); do \
	    extra=""; [ $$t = rows ] && extra=csrc/runner/sw_rows.c; \
	    clang $(CPPFLAGS) -Icsrc/runner -O1 -g -fsanitize=fuzzer $(FUZZ_SAN) \
	        tests/fuzz/fuzz_$$t.c $$extra $(FUZZ_BUILD)/libswio.a \
	        $(FUZZ_BUILD)/libswcore.a $(IO_LIBS) $(KAFKA_LIBS) $(HDF5_LIBS) \
	        $(AVRO_LIBS) $(LIBS) -o $(FUZZ_BUILD)/bin/fuzz_$$t || exit 1; \
	done
	rm -rf $(FUZZ_BUILD)/seeds
	PYTHONPATH=python $(PYTHON) tests/fuzz/seeds.py $(FUZZ_BUILD)/seeds

# Each target for FUZZ_SECONDS on its corpus (kept in build/fuzz/corpus).
fuzz: fuzz-build
	@for t in $(FUZZ_TARGETS); do \
	    mkdir -p $(FUZZ_BUILD)/corpus/$$t; \
	    echo "fuzz_$$t: $(FUZZ_SECONDS) s"; \
	    $(FUZZ_BUILD)/bin/fuzz_$$t -max_total_time=$(FUZZ_SECONDS) \
	        -print_final_stats=1 $(FUZZ_BUILD)/corpus/$$t \
	        $(FUZZ_BUILD)/seeds/$$t tests/fuzz/regressions/$$t \
	        > $(FUZZ_BUILD)/$$t.log 2>&1 \
	        || { tail -40 $(FUZZ_BUILD)/$$t.log; exit 1; }; \
	    grep -E "number_of_executed|peak_rss" $(FUZZ_BUILD)/$$t.log; \
	done

# In make test: the seeds and the inputs that once failed
# (tests/fuzz/regressions) replayed, then a fixed number of mutations
# from a fixed seed, so that a test run is repeatable (make fuzz looks
# for new faults; what it finds goes into tests/fuzz/regressions).
fuzz-smoke: fuzz-build
	@for t in $(FUZZ_TARGETS); do \
	    $(FUZZ_BUILD)/bin/fuzz_$$t -seed=1 -runs=20000 -print_final_stats=1 \
	        $(FUZZ_BUILD)/seeds/$$t tests/fuzz/regressions/$$t \
	        > $(FUZZ_BUILD)/$$t.log 2>&1 \
	        || { tail -40 $(FUZZ_BUILD)/$$t.log; exit 1; }; \
	    echo "fuzz_$$t: $$(grep number_of_executed $(FUZZ_BUILD)/$$t.log)"; \
	done

# Install what is missing, and only that; root needs no sudo.
deps:
	@missing=""; for p in $(APT_PKGS); do \
	    dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null \
	        | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	    echo "installing Debian packages:$$missing"; \
	    if [ "$$(id -u)" = 0 ]; then sudo=""; else sudo=sudo; fi; \
	    $$sudo apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq \
	        --no-install-recommends $$missing; \
	fi

# The link line of anything that links the archives, for setup.py: the
# same library detection as the runner's, so the extension never names a
# library this machine does not have.
print-link-flags:
	@echo $(IO_LIBS) $(KAFKA_LIBS) $(HDF5_LIBS) $(AVRO_LIBS) $(LIBS)

clean:
	rm -rf $(BUILD) python/streamwise/*.so python/streamwise/__pycache__
