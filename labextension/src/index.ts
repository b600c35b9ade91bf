import { JupyterFrontEnd, JupyterFrontEndPlugin, ILayoutRestorer } from '@jupyterlab/application';
import { ISettingRegistry } from '@jupyterlab/settingregistry';
import { Widget } from '@lumino/widgets';

/** The Shelves panel in the left sidebar (first scaffold: an empty panel). */
const plugin: JupyterFrontEndPlugin<void> = {
  id: 'labshelf:plugin',
  description: 'The Shelves panel: browse labshelf shelves without a kernel.',
  autoStart: true,
  optional: [ILayoutRestorer, ISettingRegistry],
  activate: (app: JupyterFrontEnd, restorer: ILayoutRestorer | null) => {
    const panel = new Widget();
    panel.id = 'labshelf-shelves';
    panel.addClass('labshelf-panel');
    panel.title.caption = 'Shelves';
    panel.title.label = 'Shelves';
    app.shell.add(panel, 'left', { rank: 600 });
    if (restorer) {
      restorer.add(panel, panel.id);
    }
  }
};

export default plugin;
