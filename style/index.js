import './base.css';
import './flamegraph.css';
