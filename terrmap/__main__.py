from terrmap.cli import main

raise SystemExit(main())
