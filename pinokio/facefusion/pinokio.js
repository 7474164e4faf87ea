// FaceFusion for the PMOVES fleet: a Pinokio launcher (menu). Needs ffmpeg on the machine
// (apt install ffmpeg); Debian's Python and a venv, not Pinokio's conda.
module.exports = {
  version: "4.0",
  title: "FaceFusion",
  description: "Face swapper and enhancer (PMOVES fleet launcher): 127.0.0.1:7860",
  menu: async (kernel, info) => {
    if (info.running("install.js")) return [{ default: true, icon: "fa-solid fa-plug", text: "Installing", href: "install.js" }]
    if (info.running("update.js")) return [{ default: true, icon: "fa-solid fa-rotate", text: "Updating", href: "update.js" }]
    if (!info.exists("app/env")) return [{ default: true, icon: "fa-solid fa-plug", text: "Install", href: "install.js" }]
    if (info.running("start.js")) {
      const local = info.local("start.js")
      const items = [{ icon: "fa-solid fa-terminal", text: "Terminal", href: "start.js" }]
      if (local && local.url) items.unshift({ default: true, icon: "fa-solid fa-rocket", text: "Open Web UI", href: local.url })
      return items
    }
    return [
      { default: true, icon: "fa-solid fa-power-off", text: "Start", href: "start.js" },
      { icon: "fa-solid fa-rotate", text: "Update", href: "update.js" },
      { icon: "fa-solid fa-plug", text: "Reinstall", href: "install.js" }
    ]
  }
}
