"""The Treecast peer node: asyncio, GUI-free. The desktop app and the headless CLI
both drive this package; nothing here imports Qt."""
