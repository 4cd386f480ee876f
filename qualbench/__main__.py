from qualbench.app import main

main()
