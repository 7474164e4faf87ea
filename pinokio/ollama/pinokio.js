// Ollama for the PMOVES fleet: a Pinokio launcher (menu) for a workstation without the system
// Ollama (a Jetson runs it as a service: the ollama first-boot step). Ollama's release into
// app/, run as Pinokio's user on loopback, models in app/models.
module.exports = {
  version: "4.0",
  title: "Ollama",
  description: "Local LLM server (PMOVES fleet launcher): 127.0.0.1:11434",
  menu: async (kernel, info) => {
    if (info.running("install.js")) return [{ default: true, icon: "fa-solid fa-plug", text: "Installing", href: "install.js" }]
    if (info.running("update.js")) return [{ default: true, icon: "fa-solid fa-rotate", text: "Updating", href: "update.js" }]
    if (!info.exists("app/bin/ollama")) return [{ default: true, icon: "fa-solid fa-plug", text: "Install", href: "install.js" }]
    if (info.running("start.js")) {
      const local = info.local("start.js")
      const items = [{ icon: "fa-solid fa-terminal", text: "Terminal", href: "start.js" }]
      if (local && local.url) items.unshift({ default: true, icon: "fa-solid fa-rocket", text: "API", href: local.url })
      return items
    }
    return [
      { default: true, icon: "fa-solid fa-power-off", text: "Start", href: "start.js" },
      { icon: "fa-solid fa-rotate", text: "Update", href: "update.js" },
      { icon: "fa-solid fa-plug", text: "Reinstall", href: "install.js" }
    ]
  }
}
