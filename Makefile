# Treecast developer entry points. Every target sets itself up (.venv, system packages).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# PortAudio (sounddevice) and its ALSA->PulseAudio route; the audio tests start their
# own PulseAudio daemon with a null sink, so no sound card is needed.
# iptables, nftables, miniupnpd: the NAT lab's home routers (tests/support/natlab.py).
APT_TEST := ffmpeg libportaudio2 libasound2-plugins pulseaudio redis-server \
	iptables nftables miniupnpd
APT_GUI := xvfb libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 libxcb-image0 \
	libxcb-render-util0 libxkbcommon-x11-0 libxcb-xkb1 libxcb-shape0 libegl1 libgl1 \
	libfontconfig1 libdbus-1-3 fonts-noto-color-emoji

.PHONY: venv test run demo bench bench-quick lint screenshots clean sysdeps-test sysdeps-gui

$(STAMP): setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

# Install missing Debian packages when apt is usable; otherwise say what is missing.
sysdeps-test:
	@bash .ci/sysdeps.sh $(APT_TEST) iproute2

sysdeps-gui:
	@bash .ci/sysdeps.sh $(APT_GUI)

test: $(STAMP) sysdeps-test sysdeps-gui
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest -q -p no:cacheprovider

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy protocol tracker peer

run: $(STAMP) sysdeps-gui
	$(BIN)/treecast

demo: $(STAMP)
	$(BIN)/python -m bench.demo

bench: $(STAMP) sysdeps-test
	$(BIN)/python -m bench.run_all

bench-quick: $(STAMP) sysdeps-test
	$(BIN)/python -m bench.run_all --quick

# A real session under Xvfb (a display of its own) unless one is already there.
screenshots: $(STAMP) sysdeps-gui
	if [ -n "$$DISPLAY" ]; then $(BIN)/python -m peer.gui.screenshots; \
	else xvfb-run -a -s "-screen 0 1600x1000x24" $(BIN)/python -m peer.gui.screenshots; fi

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache
