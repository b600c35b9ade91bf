// The panel's icons: the shelf (drawn for labshelf, themed by JupyterLab's jp-icon3 class)
// and JupyterLab's own refresh icon.

import { LabIcon, refreshIcon } from '@jupyterlab/ui-components';

import shelfSvg from '../style/icons/shelf.svg';

export const shelfIcon = new LabIcon({ name: 'labshelf:shelf', svgstr: shelfSvg });

export { refreshIcon };
