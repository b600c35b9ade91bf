// The shared widget styles (the notebook widgets' own CSS, through the src/widgets link) and the panel's.
import '../src/widgets/common.css';
import '../src/widgets/table.css';
import '../src/widgets/tree.css';
import './index.css';
