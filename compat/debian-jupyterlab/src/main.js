// Starts JupyterLab: the built-in plugins of this build (builtins.js, made by
// webpack.config.js), then those of the prebuilt extensions, minus the ones
// the page config disables; the same steps as JupyterLab 4.5's own entry
// (dev_mode/index.js), without its build-check and browser-test hooks.
const { JupyterPluginRegistry, PageConfig } = require('@jupyterlab/coreutils');
const { JupyterLab } = require('@jupyterlab/application');
const { IConnectionStatus, IServiceManager } = require('@jupyterlab/services');

require('./style.js');
const builtins = require('./builtins.js');

async function prebuiltModule(scope, module) {
  const factory = await window._JUPYTERLAB[scope].get(module);
  return { scope, module: factory() };
}

function pluginsOf(module) {
  const exports = Object.prototype.hasOwnProperty.call(module, '__esModule')
    ? module.default
    : module;
  return Array.isArray(exports) ? exports : [exports];
}

async function main() {
  const prebuilt = JSON.parse(PageConfig.getOption('federated_extensions'));
  const prebuiltNames = new Set(prebuilt.map(data => data.name));

  const disabled = [];
  const deferred = [];
  const available = [];
  function* enabledPlugins({ scope, module }) {
    for (const plugin of pluginsOf(module)) {
      const isDisabled = PageConfig.Extension.isDisabled(plugin.id);
      available.push({
        id: plugin.id,
        description: plugin.description,
        requires: plugin.requires ?? [],
        optional: plugin.optional ?? [],
        provides: plugin.provides ?? null,
        autoStart: plugin.autoStart,
        enabled: !isDisabled,
        extension: scope
      });
      if (isDisabled) {
        disabled.push(plugin.id);
        continue;
      }
      if (PageConfig.Extension.isDeferred(plugin.id)) {
        deferred.push(plugin.id);
      }
      yield plugin;
    }
  }

  // A prebuilt extension of the same name replaces the built-in package.
  async function collect(loaders, prebuiltKey) {
    const modules = [];
    for (const [name, load] of Object.entries(loaders)) {
      if (!prebuiltNames.has(name)) {
        modules.push(load().then(module => ({ scope: name, module })));
      }
    }
    for (const data of prebuilt) {
      if (data[prebuiltKey]) {
        modules.push(prebuiltModule(data.name, data[prebuiltKey]));
      }
    }
    const plugins = [];
    for (const result of await Promise.allSettled(modules)) {
      if (result.status === 'fulfilled') {
        plugins.push(...enabledPlugins(result.value));
      } else {
        console.error(result.reason);
      }
    }
    return plugins;
  }

  const mimeExtensions = await collect(
    builtins.mimeExtensions,
    'mimeExtension'
  );
  const plugins = await collect(builtins.extensions, 'extension');

  const styles = prebuilt
    .filter(data => data.style && !PageConfig.Extension.isDisabled(data.name))
    .map(data => prebuiltModule(data.name, data.style));
  for (const result of await Promise.allSettled(styles)) {
    if (result.status === 'rejected') {
      console.error(result.reason);
    }
  }

  const pluginRegistry = new JupyterPluginRegistry();
  pluginRegistry.registerPlugins(plugins);
  const lab = new JupyterLab({
    pluginRegistry,
    serviceManager:
      await pluginRegistry.resolveRequiredService(IServiceManager),
    connectionStatus:
      await pluginRegistry.resolveOptionalService(IConnectionStatus),
    mimeExtensions,
    disabled: {
      matches: disabled,
      patterns: PageConfig.Extension.disabled
    },
    deferred: {
      matches: deferred,
      patterns: PageConfig.Extension.deferred
    },
    availablePlugins: available
  });
  void lab.start({ ignorePlugins: deferred, bubblingKeydown: true });

  // Browser tests reach the application through window.jupyterapp.
  if (PageConfig.getOption('exposeAppInBrowser').toLowerCase() === 'true') {
    window.jupyterapp = lab;
  }
}

exports.main = main;
